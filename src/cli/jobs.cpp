#include "jobs.h"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace outeffhop::cli {
namespace {

// The copies running now, for the SIGTERM handler (kill() is async-signal-safe; the array is filled before the handler
// is installed and not changed while it is).
constexpr int kMaxCopies = 256;
pid_t copy_pids[kMaxCopies];
volatile sig_atomic_t copy_count = 0;

extern "C" void pass_on_terminate(int) {
  for (int i = 0; i < copy_count; ++i) kill(copy_pids[i], SIGINT);  // each copy saves its state, as on Ctrl-C
}

}  // namespace

std::vector<int> run_copies(const std::vector<std::string>& args, int count, int threads_each) {
  const auto exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  if (!std::getenv("OMP_NUM_THREADS")) env_strings.push_back("OMP_NUM_THREADS=" + std::to_string(threads_each));
  auto pointers = [](std::vector<std::string>& strings) {
    std::vector<char*> p;
    for (auto& s : strings) p.push_back(s.data());
    p.push_back(nullptr);
    return p;
  };
  auto argv_strings = args;
  argv_strings.insert(argv_strings.begin(), exe);
  auto argv = pointers(argv_strings);
  auto envp = pointers(env_strings);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  TORCH_CHECK(count >= 1 && count <= kMaxCopies, "run_copies: count must be 1 to ", kMaxCopies, ", got ", count);
  std::vector<pid_t> pids;
  for (int i = 0; i < count; ++i) {
    pid_t pid;
    const int error = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
    if (error != 0) {  // those started already finish their runs; the caller learns of this one's failure
      std::fprintf(stderr, "could not start copy %d of %s: %s\n", i + 1, exe.c_str(), std::strerror(error));
      break;
    }
    pids.push_back(pid);
  }
  posix_spawn_file_actions_destroy(&actions);
  std::copy(pids.begin(), pids.end(), copy_pids);
  copy_count = static_cast<int>(pids.size());
  const auto previous = std::signal(SIGTERM, pass_on_terminate);
  std::vector<int> statuses;
  for (const pid_t pid : pids) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    statuses.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  std::signal(SIGTERM, previous);
  copy_count = 0;
  statuses.resize(count, 127);  // copies that never started
  return statuses;
}

}  // namespace outeffhop::cli
