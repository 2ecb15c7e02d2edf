// Runs python/plots.py (matplotlib in the project's venv, or $OUTEFFHOP_PYTHON) to turn a result file into a PNG.
#pragma once
#include <cstdlib>
#include <string>

#include "build_config.h"

namespace outeffhop::cli {

// kind: a plots.py subcommand (memory, tracking). Returns whether the PNG was written.
inline bool run_plot(const std::string& kind, const std::string& input, const std::string& png,
                     const std::string& title) {
  const std::string python = std::getenv("OUTEFFHOP_PYTHON") ? std::getenv("OUTEFFHOP_PYTHON") : OUTEFFHOP_PYTHON;
  const std::string command = "\"" + python + "\" \"" OUTEFFHOP_SOURCE_DIR "/python/plots.py\" " + kind + " \"" +
                              input + "\" \"" + png + "\" \"" + title + "\"";
  return std::system(command.c_str()) == 0;
}

// The interpreter run_plot uses (for messages).
inline std::string plot_python() {
  return std::getenv("OUTEFFHOP_PYTHON") ? std::getenv("OUTEFFHOP_PYTHON") : OUTEFFHOP_PYTHON;
}

}  // namespace outeffhop::cli
