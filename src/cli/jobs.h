// Copies of this program working side by side (`experiment --jobs N`): each a separate process, so that small models
// train one per core, which gains more than threads inside one process do (docs/PERFORMANCE.md).
#pragma once
#include <string>
#include <vector>

namespace outeffhop::cli {

// Starts `count` processes of this executable with `args` (argv after the program name), each with its standard
// output discarded and, unless the caller's environment sets it, OMP_NUM_THREADS = threads_each; waits for all of
// them and returns their exit statuses in start order (128 + N for one ended by signal N). Ctrl-C reaches them as
// usual (the terminal signals the whole foreground group); a SIGTERM to this process while it waits is passed on to
// them as SIGINT, so that they save their state either way; waiting is not cut short by a signal.
std::vector<int> run_copies(const std::vector<std::string>& args, int count, int threads_each);

}  // namespace outeffhop::cli
