// outeffhop command-line tool: parses the subcommand and turns every error into a message and a non-zero exit.
#include <c10/util/Exception.h>

#include <exception>
#include <iostream>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"outeffhop: outlier-efficient attention and modern Hopfield networks (Hu et al., ICML 2024)"};
  app.require_subcommand(1);
  outeffhop::cli::add_info(app);
  outeffhop::cli::add_retrieve(app);
  outeffhop::cli::add_bench(app);
  outeffhop::cli::add_memory(app);
  outeffhop::cli::add_eval(app);
  outeffhop::cli::add_logits(app);
  outeffhop::cli::add_tokenize(app);
  outeffhop::cli::add_experiment(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
