// The experiment runner's parts: YAML configs (types, --set overrides, unknown keys), the training state (save ->
// load gives the same model, optimizer and generators; a truncated file is an error), and run_one on a toy task: a
// run stopped and resumed gives exactly the loss curve and result of an uninterrupted run; a finished run is skipped;
// a run's status follows its files, and a run another holder has locked is refused; the held-out books of bert and lm.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/experiment/config.h"
#include "outeffhop/experiment/evaluation.h"
#include "outeffhop/experiment/results_table.h"
#include "outeffhop/experiment/runner.h"
#include "outeffhop/experiment/task.h"
#include "outeffhop/experiment/w8a8_breakdown.h"
#include "outeffhop/models/vit.h"
#include "outeffhop/nn/activation_points.h"
#include "outeffhop/safetensors.h"
#include "outeffhop/training_state.h"
#include "test_util.h"

namespace outeffhop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("outeffhop_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(Config, YamlScalarsOverridesAndUnknownKeys) {
  auto c = experiment::parse_yaml(
      "name: x\nseeds: [0, 1]\nlr: 1.0e-3\nflag: true\nquoted: '12'\n"
      "tasks:\n  - {task: vit, train: {steps: 5}}\n  - {task: lm, train: {steps: 7}}\n",
      "test");
  EXPECT_EQ(c["seeds"], json::array({0, 1}));
  EXPECT_DOUBLE_EQ(c["lr"].get<double>(), 1e-3);
  EXPECT_EQ(c["flag"], true);
  EXPECT_EQ(c["quoted"], "12");  // quoted scalars stay strings
  experiment::apply_override(c, "tasks.*.train.steps=100");
  experiment::apply_override(c, "tasks.1.model.d_model=32");
  experiment::apply_override(c, "seeds=[3, 4, 5]");
  EXPECT_EQ(c["tasks"][0]["train"]["steps"], 100);
  EXPECT_EQ(c["tasks"][1]["train"]["steps"], 100);
  EXPECT_EQ(c["tasks"][1]["model"]["d_model"], 32);
  EXPECT_EQ(c["seeds"].size(), 3u);
  EXPECT_THROW(experiment::apply_override(c, "tasks.5.train.steps=1"), std::runtime_error);  // past the end
  EXPECT_THROW(experiment::apply_override(c, "name.sub=1"), std::runtime_error);             // through a scalar
  EXPECT_THROW(experiment::apply_override(c, "no_equals_sign"), std::runtime_error);
  EXPECT_THROW(experiment::parse_yaml("a: [1, 2", "test"), std::runtime_error);

  experiment::ConfigReader reader(c, "test.yaml");
  EXPECT_EQ(reader.required<std::string>("name"), "x");
  EXPECT_EQ(reader.get<int64_t>("missing", 9), 9);
  try {
    reader.get<int64_t>("name", 0);  // a string where a number is wanted
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'name' has the wrong type"), std::string::npos) << e.what();
  }
  try {
    reader.finish();  // seeds, lr, flag, quoted and tasks were never read
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("test.yaml: unknown key"), std::string::npos) << e.what();
  }
  auto tasks = reader.children("tasks");
  ASSERT_EQ(tasks.size(), 2u);
  auto train = tasks[1].child("train");
  train.get<int64_t>("steps", 0);
  EXPECT_NO_THROW(train.finish());
  try {
    tasks[1].finish();  // task, model not read
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'tasks.1.model'"), std::string::npos) << e.what();
  }
}

// A task's label (its runs' folder, what --task selects) comes from its config entry alone, with the tasks' defaults;
// make_task checks that the built task agrees (tested here on marker-copy, the task that needs no data).
TEST(Config, TaskLabelsComeFromTheConfigAlone) {
  auto label = [](const std::string& yaml) { return experiment::task_label({json::parse(yaml), "test"}); };
  EXPECT_EQ(label(R"({"task": "lm"})"), "opt-books");
  EXPECT_EQ(label(R"({"task": "bert", "data": {"held_out": 2}})"), "bert-books");
  EXPECT_EQ(label(R"({"task": "vit"})"), "vit-fashion-mnist");
  EXPECT_EQ(label(R"({"task": "vit", "data": {"dataset": "cifar10"}})"), "vit-cifar10");
  EXPECT_EQ(label(R"({"task": "stanhop"})"), "stanhop-etth1-24");
  EXPECT_EQ(label(R"({"task": "stanhop", "data": {"dataset": "wth", "out_len": 168}})"), "stanhop-wth-168");
  try {
    label(R"({"task": "gpt"})");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("must be lm, bert, vit, stanhop or marker-copy, got 'gpt'"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(label(R"({"task": "stanhop", "data": {"out_len": "long"}})"), std::runtime_error);
  const json marker = {{"task", "marker-copy"}, {"train", {{"steps", 1}}}};
  EXPECT_EQ(experiment::make_task({marker, "test"}, "")->label(), label(marker.dump()));
}

// eval.batches is a count >= 1 or "all"; marker-copy draws its samples, so "all" means nothing there.
TEST(Config, EvalBatchesIsACountOrAll) {
  const auto refusal = [](const json& eval) {
    try {
      experiment::make_task({json{{"task", "marker-copy"}, {"eval", eval}}, "test"}, "");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(refusal({{"batches", "all"}}).find("'eval.batches' must be a number for marker-copy"), std::string::npos)
      << refusal({{"batches", "all"}});
  EXPECT_NE(refusal({{"batches", "many"}}).find("'eval.batches' has the wrong type"), std::string::npos)
      << refusal({{"batches", "many"}});
  EXPECT_NE(refusal({{"batches", 0}}).find("needs batches >= 1 (or all)"), std::string::npos)
      << refusal({{"batches", 0}});
  EXPECT_EQ(refusal({{"batches", 3}}), "accepted");
  EXPECT_NE(refusal({{"calibrate_on", "test"}}).find("'eval.calibrate_on' is 'test'; use task"), std::string::npos)
      << refusal({{"calibrate_on", "test"}});
  EXPECT_EQ(refusal({{"calibrate_on", "eval"}}), "accepted");
  // Recorded only when set, so the resolved configs of runs made before the setting still match.
  const auto resolved = [](const json& eval) {
    return experiment::make_task({json{{"task", "marker-copy"}, {"eval", eval}}, "test"}, "")->resolved()["eval"];
  };
  EXPECT_FALSE(resolved({{"calibrate_on", "task"}}).contains("calibrate_on"));
  EXPECT_EQ(resolved({{"calibrate_on", "eval"}})["calibrate_on"], "eval");
  for (const std::string key : {"weight_bits", "activation_bits"}) {
    EXPECT_NE(refusal({{key, 1}}).find("'eval." + key + "' is 1; the simulation takes 2 to 16 bits"), std::string::npos)
        << refusal({{key, 1}});
    EXPECT_NE(refusal({{key, 17}}).find("is 17"), std::string::npos) << refusal({{key, 17}});
    EXPECT_FALSE(resolved({{key, 8}}).contains(key));
    EXPECT_EQ(resolved({{key, 4}})[key], 4);
  }
  EXPECT_NE(refusal({{"weight_granularity", "row"}}).find("'eval.weight_granularity' is 'row'; use tensor"),
            std::string::npos)
      << refusal({{"weight_granularity", "row"}});
  EXPECT_FALSE(resolved({{"weight_granularity", "tensor"}}).contains("weight_granularity"));
  EXPECT_EQ(resolved({{"weight_granularity", "channel"}})["weight_granularity"], "channel");
  EXPECT_NE(refusal({{"table_granularity", "channel"}}).find("'eval.table_granularity' is 'channel'; use tensor"),
            std::string::npos)
      << refusal({{"table_granularity", "channel"}});
  EXPECT_FALSE(resolved({{"table_granularity", "tensor"}}).contains("table_granularity"));
  EXPECT_EQ(resolved({{"table_granularity", "row"}})["table_granularity"], "row");
}

models::VitConfig toy_vit() {
  models::VitConfig c;
  c.image_size = 8, c.patch_size = 4, c.channels = 1, c.num_classes = 3, c.d_model = 16, c.num_layers = 1;
  c.num_heads = 2, c.d_ff = 32, c.dropout = 0.1;  // dropout: the torch generator matters for an exact resume
  c.variant = nn::parse_attention_variant("softmax1");
  return c;
}

TEST(TrainingState, RoundTripRestoresModelOptimizerAndGenerators) {
  const auto dir = fresh_dir("state");
  at::manual_seed(0);
  models::VitForImageClassification a(toy_vit());
  train::TrainOptions o;
  o.steps = 3;
  auto opt_a = train::make_adamw(*a, o);
  const auto x = at::randn({4, 1, 8, 8});
  const auto y = at::randint(3, {4}, at::kLong);
  train::train(*a, *opt_a, o, [&](int64_t) { return at::cross_entropy_loss(a->forward(x), y); }, {});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  at::randint(100, {5}, gen);  // move it off its seed
  const auto path = (dir / "state.safetensors").string();
  train::save_training_state(path, *a, *opt_a, 3, {{"data", gen}}, {{"config", "abc"}});
  const auto next_draw = at::randint(1000000, {4}, gen);

  at::manual_seed(1);
  models::VitForImageClassification b(toy_vit());
  auto opt_b = train::make_adamw(*b, o);
  auto gen_b = at::make_generator<at::CPUGeneratorImpl>(99);
  const auto state = train::load_training_state(path, *b, *opt_b, {{"data", gen_b}});
  EXPECT_EQ(state.step, 3);
  EXPECT_EQ(state.metadata.at("config"), "abc");
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(at::equal(p.value(), pb[p.key()])) << p.key();
  EXPECT_TRUE(at::equal(at::randint(1000000, {4}, gen_b), next_draw));
  // The same next step from both: the optimizer moments and step counts came back too. (The learning rate is not
  // state: the trainer sets it from the schedule at every step.)
  a->eval(), b->eval();
  for (auto* opt : {opt_a.get(), opt_b.get()}) {
    opt->zero_grad();
    for (auto& group : opt->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(1e-3);
  }
  at::cross_entropy_loss(a->forward(x), y).backward();
  at::cross_entropy_loss(b->forward(x), y).backward();
  opt_a->step(), opt_b->step();
  for (const auto& p : pa) EXPECT_TRUE(at::allclose(p.value(), pb[p.key()], 0, 0)) << p.key();

  // Truncated file, another model's state: clear errors naming the file; the model is left as it was.
  const auto before = b->named_parameters()["classifier.weight"].clone();
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  EXPECT_THROW(train::load_training_state(path, *b, *opt_b, {{"data", gen_b}}), c10::Error);
  auto other_config = toy_vit();
  other_config.d_model = 8;
  models::VitForImageClassification other(other_config);
  auto opt_other = train::make_adamw(*other, o);
  train::save_training_state(path, *other, *opt_other, 0, {});
  try {
    train::load_training_state(path, *b, *opt_b, {});
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find(path), std::string::npos);
  }
  EXPECT_TRUE(at::equal(b->named_parameters()["classifier.weight"], before));
  fs::remove_all(dir);
}

// A ViT on a fixed random 3-class image set: the runner's Task interface without any dataset on disk.
class ToyTask : public experiment::Task {
 public:
  explicit ToyTask(double dropout = 0.1) {
    train_.steps = 8, train_.lr = 3e-3, train_.warmup = 2;
    evaluation_.batches = 2, evaluation_.calibration_batches = 1, evaluation_.track_every = 1;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    images_ = at::randn({64, 1, 8, 8}, gen), labels_ = at::randint(3, {64}, gen);
    for (int64_t b = 0; b < 2; ++b)
      eval_.push_back({images_.slice(0, 8 * b, 8 * b + 8), labels_.slice(0, 8 * b, 8 * b + 8)});
    const auto c = toy_vit();
    resolved_ = {{"task", "vit"},
                 {"model",
                  {{"patch_size", c.patch_size},
                   {"d_model", c.d_model},
                   {"layers", c.num_layers},
                   {"heads", c.num_heads},
                   {"d_ff", c.d_ff},
                   {"dropout", dropout},
                   {"attention_dropout", 0.0},
                   {"init_std", c.init_std}}},
                 {"derived", {{"image_size", 8}, {"channels", 1}, {"num_classes", 3}}}};
    resolved_["train"] = {{"steps", train_.steps}};  // as the real tasks record it
  }
  std::string label() const override { return "toy"; }
  std::string description() const override { return "toy"; }
  std::string metric_name() const override { return "top-1 %"; }
  double metric(double, double accuracy) const override { return 100 * accuracy; }
  bool lower_is_better() const override { return false; }
  experiment::TaskModel build(const std::string& variant) const override {
    return experiment::build_model(resolved_, variant);
  }
  experiment::Batch train_batch(at::Generator& gen) const override {
    const auto index = at::randint(64, {8}, gen);
    return {images_.index_select(0, index), labels_.index_select(0, index)};
  }
  const std::vector<experiment::Batch>& eval_batches() const override { return eval_; }
  analysis::OutlierRows outlier_rows(const std::string& p) const override { return analysis::vit_outlier_rows(p); }
  std::map<std::string, at::Tensor> w8a8_lookups(const experiment::TaskModel&) const override { return {}; }

 private:
  at::Tensor images_, labels_;
  std::vector<experiment::Batch> eval_;
};

std::vector<double> tracked_losses(const fs::path& run_dir) {
  std::vector<double> losses;
  std::ifstream in(run_dir / "tracking.jsonl");
  for (std::string line; std::getline(in, line);) losses.push_back(json::parse(line)["loss"].get<double>());
  return losses;
}

TEST(Runner, ResumedRunEqualsUninterruptedRunAndFinishedRunsAreSkipped) {
  const auto dir = fresh_dir("runner");
  ToyTask task;
  experiment::RunOptions options;
  options.checkpoint_every = 3, options.log_every = 100, options.time_int8 = false;
  const auto whole = experiment::run_one(task, "softmax1", 0, (dir / "whole").string(), options);
  ASSERT_TRUE(whole.has_value());
  const auto losses = tracked_losses(dir / "whole");
  ASSERT_EQ(losses.size(), 8u);  // track_every 1: every step

  int calls = 0;  // the stop request comes before step 6 (0-based 5): 5 steps done, the last checkpoint was at 3
  const auto stopped =
      experiment::run_one(task, "softmax1", 0, (dir / "split").string(), options, [&] { return ++calls > 5; });
  EXPECT_FALSE(stopped.has_value());
  EXPECT_TRUE(fs::exists(dir / "split" / "state.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "split" / "result.json"));
  const auto resumed = experiment::run_one(task, "softmax1", 0, (dir / "split").string(), options);
  ASSERT_TRUE(resumed.has_value());
  EXPECT_EQ(tracked_losses(dir / "split"), losses);  // bit for bit
  for (const char* p : {"fp32", "fp16", "bf16", "w8a8"}) EXPECT_EQ((*resumed)[p]["loss"], (*whole)[p]["loss"]) << p;
  EXPECT_EQ((*resumed)["outliers"]["avg_kurtosis"], (*whole)["outliers"]["avg_kurtosis"]);
  // Each module's peak |x| is its largest row inf-norm, found by another route (the outlier statistics).
  const auto& outliers = (*whole)["outliers"];
  ASSERT_EQ(outliers["peaks"].size(), outliers["modules"].size());
  for (size_t i = 0; i < outliers["peaks"].size(); ++i) {
    EXPECT_EQ(outliers["peaks"][i]["module"], outliers["modules"][i]["module"]);
    EXPECT_NEAR(outliers["peaks"][i]["value"].get<double>(), outliers["modules"][i]["max_row_inf_norm"].get<double>(),
                1e-5);
    EXPECT_FALSE(outliers["peaks"][i].contains("token"));  // images: no token ids
  }

  // A run killed before its first checkpoint left tracking lines and no state: it starts over without them.
  fs::create_directories(dir / "crashed");
  fs::copy_file(dir / "whole" / "tracking.jsonl", dir / "crashed" / "tracking.jsonl");
  ASSERT_TRUE(experiment::run_one(task, "softmax1", 0, (dir / "crashed").string(), options).has_value());
  EXPECT_EQ(tracked_losses(dir / "crashed"), losses);

  // Run again: the result is read back, nothing trains (the state file is not touched).
  const auto stamp = fs::last_write_time(dir / "split" / "state.safetensors");
  const auto again = experiment::run_one(task, "softmax1", 0, (dir / "split").string(), options);
  EXPECT_EQ(again->dump(), resumed->dump());
  EXPECT_EQ(fs::last_write_time(dir / "split" / "state.safetensors"), stamp);
  fs::remove_all(dir);
}

TEST(Runner, StatusFollowsARunThroughItsFiles) {
  using State = experiment::RunStatus::State;
  const auto dir = fresh_dir("status");
  ToyTask task;
  experiment::RunOptions options;
  options.checkpoint_every = 3, options.log_every = 100, options.time_int8 = false;
  const auto run = (dir / "run").string();
  EXPECT_EQ(experiment::run_status(run).state, State::kNotStarted);

  int calls = 0;  // stopped after 5 steps: the state saved on the stop request holds step 5
  ASSERT_FALSE(experiment::run_one(task, "softmax", 0, run, options, [&] { return ++calls > 5; }).has_value());
  auto status = experiment::run_status(run);
  EXPECT_EQ(status.state, State::kTraining);
  EXPECT_EQ(status.step, 5);
  EXPECT_EQ(status.steps, task.train_options().steps);
  EXPECT_FALSE(status.in_use);

  {  // While another holder has the run's lock, nobody else trains it.
    const auto lock = experiment::RunLock::try_acquire(run);
    ASSERT_TRUE(lock.has_value());
    EXPECT_TRUE(experiment::run_status(run).in_use);
    EXPECT_FALSE(experiment::RunLock::try_acquire(run).has_value());
    try {
      experiment::run_one(task, "softmax", 0, run, options);
      ADD_FAILURE() << "a locked run was trained";
    } catch (const experiment::RunInUse& e) {
      EXPECT_NE(std::string(e.what()).find("another process is working on this run"), std::string::npos) << e.what();
    }
    EXPECT_EQ(experiment::run_status(run).step, 5);  // untouched
  }
  EXPECT_FALSE(experiment::run_status(run).in_use);  // released with its holder
  EXPECT_FALSE(experiment::run_in_use((dir / "never").string()));
  EXPECT_FALSE(fs::exists(dir / "never"));

  ASSERT_TRUE(experiment::run_one(task, "softmax", 0, run, options).has_value());
  status = experiment::run_status(run);
  EXPECT_EQ(status.state, State::kFinished);
  EXPECT_FALSE(status.train_seconds.has_value());  // trained in two pieces: no time
  const auto whole = (dir / "whole").string();
  ASSERT_TRUE(experiment::run_one(task, "softmax", 1, whole, options).has_value());
  status = experiment::run_status(whole);
  ASSERT_TRUE(status.train_seconds.has_value());
  EXPECT_GT(*status.train_seconds, 0);

  // Trained, its evaluation not written: the model file alone.
  fs::create_directories(dir / "trained");
  fs::copy_file(dir / "whole" / "model.safetensors", dir / "trained" / "model.safetensors");
  EXPECT_EQ(experiment::run_status((dir / "trained").string()).state, State::kTrained);

  // Only the archive has it: archived; the runs dir's own result comes first.
  const auto archived = (dir / "archive" / "whole").string();
  experiment::archive_run(whole, archived);
  EXPECT_EQ(experiment::run_status((dir / "elsewhere").string(), archived).state, State::kArchived);
  EXPECT_EQ(experiment::run_status(whole, archived).state, State::kFinished);

  // A state file cut short is an error naming it, not a guess.
  fs::create_directories(dir / "cut");
  std::ofstream(dir / "cut" / "state.safetensors") << "abc";
  try {
    experiment::run_status((dir / "cut").string());
    ADD_FAILURE() << "no error for a truncated state file";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("state.safetensors: truncated"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// Processes that share an experiment each archive the finished runs when they start: copies of one run into one
// archive at the same time must not trip over each other's temporary files.
TEST(Runner, ArchivingOneRunTwiceAtOnceIsSafe) {
  const auto dir = fs::temp_directory_path() / "outeffhop-archive-race";
  fs::remove_all(dir);
  fs::create_directories(dir / "run");
  const std::string result(100000, 'r'), tracking(300000, 't');  // big enough that copies overlap
  std::ofstream(dir / "run" / "result.json") << result;
  std::ofstream(dir / "run" / "tracking.jsonl") << tracking;
  std::atomic<int> errors{0};
  auto archive = [&] {
    for (int i = 0; i < 100; ++i) try {
        experiment::archive_run((dir / "run").string(), (dir / "archive").string());
      } catch (const std::exception& e) {
        if (errors++ == 0) ADD_FAILURE() << e.what();
      }
  };
  std::thread first(archive), second(archive);
  first.join(), second.join();
  EXPECT_EQ(errors.load(), 0);
  auto text = [](const fs::path& p) { return std::string(std::istreambuf_iterator<char>(std::ifstream(p).rdbuf()), {}); };
  EXPECT_EQ(text(dir / "archive" / "result.json"), result);
  EXPECT_EQ(text(dir / "archive" / "tracking.jsonl"), tracking);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "archive"), fs::directory_iterator{}), 2);  // no leftovers
  fs::remove_all(dir);
}

TEST(Runner, TrainingDeviceIsCheckedWithAClearError) {
  auto config = experiment::parse_yaml("name: x\ndevice: tpu\ntasks: [{task: vit}]\n", "test");
  try {
    experiment::read_experiment(experiment::ConfigReader(config, "test.yaml"));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'device'"), std::string::npos) << e.what();
  }
  config["device"] = "cuda:1";
  EXPECT_EQ(experiment::read_experiment(experiment::ConfigReader(config, "test.yaml")).run.device, "cuda:1");
  EXPECT_EQ(experiment::available_device("cpu"), at::Device(at::kCPU));
  EXPECT_THROW(experiment::available_device("cuda:999"), c10::Error);  // no machine has a thousand GPUs
  EXPECT_THROW(experiment::available_device("meta"), c10::Error);

  const auto dir = fresh_dir("device");
  ToyTask task;
  experiment::RunOptions options;
  options.log_every = 100, options.time_int8 = false, options.device = "cuda:999";
  EXPECT_THROW(experiment::run_one(task, "softmax1", 0, (dir / "run").string(), options), c10::Error);
  EXPECT_FALSE(fs::exists(dir / "run"));  // nothing trained, nothing written
  fs::remove_all(dir);
}

// Runs only where a GPU is usable (the device machines): training there gives the CPU run's model to float32
// rounding, evaluation runs on CPU as always, and FP16/BF16 run natively on the GPU.
TEST(Runner, TrainingOnAGpuMatchesTheCpuRun) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no usable CUDA GPU";
  const auto dir = fresh_dir("gpu");
  ToyTask task(0.0);  // no dropout: the GPU draws its masks from another generator
  experiment::RunOptions options;
  options.log_every = 100, options.time_int8 = false;
  const auto cpu = experiment::run_one(task, "softmax", 0, (dir / "cpu").string(), options);
  options.device = "cuda";
  const auto gpu = experiment::run_one(task, "softmax", 0, (dir / "gpu").string(), options);
  ASSERT_TRUE(cpu && gpu);
  EXPECT_NEAR((*gpu)["fp32"]["loss"].get<double>(), (*cpu)["fp32"]["loss"].get<double>(), 1e-3);
  EXPECT_EQ((*gpu)["half_precision"], "native on cuda");
  EXPECT_LT((*gpu)["fp16"]["kl"].get<double>(), 1e-2);
  fs::remove_all(dir);
}

// A forecasting task on synthetic series (no data files): the target continues each input's last step with a slope.
class ToyForecastTask : public experiment::Task {
 public:
  ToyForecastTask(int64_t validate_every, int64_t patience) {
    train_.steps = 60, train_.lr = 3e-2, train_.schedule = "constant", train_.weight_decay = 0;
    evaluation_.batches = 2, evaluation_.calibration_batches = 1, evaluation_.track_every = 0;
    evaluation_.validate_every = validate_every, evaluation_.patience = patience;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    for (const int64_t rows : {8, 5}) eval_.push_back(sample(rows, gen));  // unequal batches: weighted means
    for (int64_t b = 0; b < 2; ++b) validation_.push_back(sample(6, gen));
    resolved_ = {{"task", "stanhop"},
                 {"data", {{"in_len", 6}, {"out_len", 3}}},
                 {"model",
                  {{"seg_len", 3},
                   {"win_size", 2},
                   {"layers", 1},
                   {"factor", 2},
                   {"d_model", 8},
                   {"heads", 2},
                   {"d_ff", 8},
                   {"dropout", 0.0}}},
                 {"derived", {{"series", 2}}}};
  }
  std::string label() const override { return "toy-forecast"; }
  std::string description() const override { return "toy forecast"; }
  std::string metric_name() const override { return "MSE"; }
  double metric(double mean_loss, double) const override { return mean_loss; }
  bool lower_is_better() const override { return true; }
  bool regression() const override { return true; }
  experiment::TaskModel build(const std::string& variant) const override {
    return experiment::build_model(resolved_, variant);
  }
  experiment::Batch train_batch(at::Generator& gen) const override { return sample(8, gen); }
  const std::vector<experiment::Batch>& eval_batches() const override { return eval_; }
  const std::vector<experiment::Batch>& validation_batches() const override { return validation_; }
  analysis::OutlierRows outlier_rows(const std::string&) const override { return analysis::OutlierRows::kPerSample; }
  std::map<std::string, at::Tensor> w8a8_lookups(const experiment::TaskModel&) const override { return {}; }

 private:
  static experiment::Batch sample(int64_t rows, at::Generator& gen) {
    const auto x = at::randn({rows, 6, 2}, gen);
    const auto steps = at::arange(1, 4, at::kFloat).view({1, 3, 1});
    return {x, x.narrow(1, 5, 1) + 0.1 * steps};
  }
  std::vector<experiment::Batch> eval_, validation_;
};

std::vector<json> jsonl(const fs::path& path) {
  std::vector<json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

TEST(Runner, ForecastEvaluationIsTheWeightedMseAndMaeOfEveryWindow) {
  const auto dir = fresh_dir("forecast-eval");
  ToyForecastTask task(0, 1);
  experiment::RunOptions options;
  options.log_every = 100, options.time_int8 = false;
  const auto result = experiment::run_one(task, "softmax1", 0, (dir / "run").string(), options);
  ASSERT_TRUE(result.has_value());
  // Independent computation: the saved model on all windows at once.
  auto model = task.build("softmax1");
  load_module((dir / "run" / "model.safetensors").string(), *model.module);
  model.module->eval();
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> outputs, targets;
  for (const auto& b : task.eval_batches()) outputs.push_back(model.logits(b.input)), targets.push_back(b.target);
  const auto error = at::cat(outputs) - at::cat(targets);
  EXPECT_NEAR((*result)["fp32"]["mse"].get<double>(), error.pow(2).mean().item<double>(), 1e-6);
  EXPECT_NEAR((*result)["fp32"]["mae"].get<double>(), error.abs().mean().item<double>(), 1e-6);
  EXPECT_EQ((*result)["fp32"]["metric"], (*result)["fp32"]["mse"]);
  EXPECT_GT((*result)["w8a8"]["output_change"].get<double>(), 0.0);  // quantization moved the forecast
  EXPECT_LT((*result)["w8a8"]["output_change"].get<double>(), 0.5);
  EXPECT_FALSE(result->contains("early_stopping"));
  const auto table = experiment::results_table(task, {*result}, {"softmax1"});
  EXPECT_NE(table.find("| FP32 MSE | FP32 MAE |"), std::string::npos) << table;
  EXPECT_EQ(table.find("±"), std::string::npos) << table;  // one seed: bare values
  EXPECT_EQ(table.find("best validation step"), std::string::npos) << table;  // no early stopping: no column
  // Two seeds: mean ± population std; MSEs m and m + 0.2 give m + 0.1 ± 0.1.
  auto second = *result;
  const double mse = (*result)["fp32"]["mse"].get<double>();
  second["fp32"]["mse"] = mse + 0.2;
  const auto two = experiment::results_table(task, {*result, second}, {"softmax1"});
  char expected[64];
  std::snprintf(expected, sizeof expected, "| %.4f ± 0.1000 |", mse + 0.1);
  EXPECT_NE(two.find(std::string("| softmax1 ") + expected), std::string::npos) << two;
  fs::remove_all(dir);
}

// The paired table against hand-worked differences: per seed, variant minus baseline; a seed the baseline lacks is
// left out; mean ± population std, signed; the count of seeds where the variant is lower.
TEST(Runner, PairedTableDiffersSeedBySeed) {
  auto result = [](const std::string& variant, int64_t seed, double metric, double kurtosis) {
    return json{{"variant", variant},
                {"seed", seed},
                {"fp32", {{"metric", metric}}},
                {"w8a8", {{"metric", metric + 0.5}}},
                {"outliers", {{"avg_kurtosis", kurtosis}, {"max_inf_norm", 4.0}}}};
  };
  const std::vector<json> results = {result("softmax", 0, 1.0, 3.0), result("softmax", 1, 2.0, 3.0),
                                     result("softmax", 2, 3.0, 3.0),  result("softmax1", 0, 0.9, 2.9),
                                     result("softmax1", 1, 1.9, 2.8), result("softmax1", 2, 3.4, 3.0),
                                     result("softmax1", 3, 9.0, 9.0),  // no softmax run with seed 3
                                     result("gated(linear)", 7, 1.0, 3.0)};
  const auto table = experiment::paired_table(results, {"softmax", "softmax1", "gated(linear)"}, "MSE");
  // differences -0.1, -0.1, +0.4: mean 0.0667, population std sqrt(0.1667 / 3) = 0.2357; kurtosis -0.1, -0.2, 0
  EXPECT_NE(table.find("| variant − softmax, same seed | Δ FP32 MSE | Δ W8A8 MSE | Δ avg kurtosis |"), std::string::npos)
      << table;
  EXPECT_NE(table.find("| softmax1 | +0.0667 ± 0.2357 | +0.0667 ± 0.2357 | -0.100 ± 0.082 | +0.000 ± 0.000 | 2/3 | 2/3 | "
                       "2/3 | 0/3 |"),
            std::string::npos)
      << table;
  EXPECT_EQ(table.find("gated"), std::string::npos) << table;  // no seed in common with softmax
  EXPECT_EQ(table.find("KL"), std::string::npos) << table;      // forecasts have no W8A8 KL
  EXPECT_EQ(experiment::paired_table(results, {"softmax"}, "MSE"), "");
  // With a W8A8 KL in every result (0.010, 0.020, 0.030 nats against 0.012, 0.016, 0.030): +2, -4, 0 mnats.
  auto with_kl = results;
  for (size_t i = 0; i < 6; ++i) with_kl[i]["w8a8"]["kl"] = std::vector{0.010, 0.020, 0.030, 0.012, 0.016, 0.030}[i];
  for (size_t i = 6; i < with_kl.size(); ++i) with_kl[i]["w8a8"]["kl"] = 0.5;
  const auto kl_table = experiment::paired_table(with_kl, {"softmax", "softmax1"}, "MSE");
  EXPECT_NE(kl_table.find("| Δ W8A8 MSE | Δ W8A8 KL (mnats) | Δ avg kurtosis |"), std::string::npos) << kl_table;
  EXPECT_NE(kl_table.find("| +0.0667 ± 0.2357 | -0.67 ± 2.49 | -0.100 ± 0.082 |"), std::string::npos) << kl_table;
  EXPECT_NE(kl_table.find("| 2/3 | 2/3 | 1/3 | 2/3 | 0/3 |"), std::string::npos) << kl_table;
  // A further evaluation set's W8A8 KL in every result gets its own column (0.040, 0.050, 0.060 against 0.030, 0.055,
  // 0.070: -10, +5, +10 mnats); one result without it drops the column.
  auto with_books = with_kl;
  for (size_t i = 0; i < with_books.size(); ++i)
    with_books[i]["extra"]["books"]["w8a8"]["kl"] = std::vector{0.040, 0.050, 0.060, 0.030, 0.055, 0.070, 1.0, 1.0}[i];
  const auto books_table = experiment::paired_table(with_books, {"softmax", "softmax1"}, "MSE");
  EXPECT_NE(books_table.find("| Δ W8A8 KL (mnats) | Δ W8A8 books KL (mnats) | Δ avg kurtosis |"), std::string::npos)
      << books_table;
  EXPECT_NE(books_table.find("| -0.67 ± 2.49 | +1.67 ± 8.50 | -0.100 ± 0.082 |"), std::string::npos) << books_table;
  EXPECT_NE(books_table.find("| 2/3 | 2/3 | 1/3 | 1/3 | 2/3 | 0/3 |"), std::string::npos) << books_table;
  with_books[7].erase("extra");
  EXPECT_EQ(experiment::paired_table(with_books, {"softmax", "softmax1"}, "MSE").find("books"), std::string::npos);
  // Results of another scheme say so in every quantized column; runs of two schemes mixed name both.
  auto w4a8 = with_kl;
  for (auto& r : w4a8) r["w8a8_bits"] = {{"weights", 4}, {"activations", 8}, {"weight_granularity", "tensor"}};
  const auto w4a8_table = experiment::paired_table(w4a8, {"softmax", "softmax1"}, "MSE");
  EXPECT_NE(w4a8_table.find("| Δ FP32 MSE | Δ W4A8 MSE | Δ W4A8 KL (mnats) |"), std::string::npos) << w4a8_table;
  EXPECT_EQ(w4a8_table.find("W8A8"), std::string::npos) << w4a8_table;
  for (auto& r : w4a8) r["w8a8_bits"]["table_granularity"] = "row";
  const auto rows = experiment::paired_table(w4a8, {"softmax", "softmax1"}, "MSE");
  EXPECT_NE(rows.find("| Δ W4A8, tables per row KL (mnats) |"), std::string::npos) << rows;
  w4a8[0].erase("w8a8_bits");
  const auto mixed = experiment::paired_table(w4a8, {"softmax", "softmax1"}, "MSE");
  EXPECT_NE(mixed.find("| Δ W8A8 / W4A8, tables per row KL (mnats) |"), std::string::npos) << mixed;
}

// Two tasks whose clipped variants differ in γ share the "clipped" column; a second variant of one family gets its own
// column; cells are hand-worked paired differences with the count of seeds where the variant is lower.
TEST(Runner, OutlierSummaryPairsEachTaskWithItsBaseline) {
  auto result = [](const std::string& variant, int64_t seed, double inf_norm, double kurtosis) {
    return json{{"variant", variant},
                {"seed", seed},
                {"outliers", {{"avg_kurtosis", kurtosis}, {"max_inf_norm", inf_norm}}}};
  };
  const std::vector<std::vector<json>> results = {
      {result("softmax", 0, 10, 5), result("softmax", 1, 12, 5), result("clipped(-1e-5,1)", 0, 9, 6),
       result("clipped(-1e-5,1)", 1, 13, 4), result("softmax1", 0, 8, 5)},
      {result("softmax", 0, 4, 3), result("clipped(-0.1,1)", 0, 3.5, 3.25), result("clipped(-0.2,1)", 0, 5, 2)},
      {result("softmax", 0, 4, 3)}};  // a baseline alone: no row
  const auto tables = experiment::outlier_summary_tables(experiment::paired_outliers(
      {"vit", "opt", "bert"}, results,
      {{"softmax", "clipped(-1e-5,1)", "softmax1"}, {"softmax", "clipped(-0.1,1)", "clipped(-0.2,1)"}, {"softmax"}}));
  // vit clipped: -1 and +1 (mean 0, population std 1, lower in 1 of 2); kurtosis +1 and -1.
  EXPECT_NE(tables.find("Δ max inf-norm, variant − baseline:\n\n| task | baseline | clipped | softmax1 | "
                        "clipped(-0.2,1) |\n|---|---|---|---|---|\n"
                        "| vit | softmax | +0.00 ± 1.00 (1/2) | -2.00 (1/1) | – |\n"
                        "| opt | softmax | -0.50 (1/1) | – | +1.00 (0/1) |\n"),
            std::string::npos)
      << tables;
  EXPECT_NE(tables.find("| vit | softmax | +0.00 ± 1.00 (1/2) | +0.00 (0/1) | – |\n"
                        "| opt | softmax | +0.25 (0/1) | – | -1.00 (1/1) |\n"),
            std::string::npos)
      << tables;
  EXPECT_LT(tables.find("Δ max inf-norm"), tables.find("Δ avg kurtosis")) << tables;
  EXPECT_EQ(tables.find("| bert"), std::string::npos) << tables;
  EXPECT_EQ(tables.find("KL"), std::string::npos) << tables;  // no task has a W8A8 KL
  EXPECT_EQ(experiment::outlier_summary_tables(experiment::paired_outliers({"bert"}, {results[2]}, {{"softmax"}})), "");
}

// The data behind the summary: per task, each variant's differences seed by seed, with the seeds they come from.
TEST(Runner, PairedOutliersKeepEachSeedsDifference) {
  auto result = [](const std::string& variant, int64_t seed, double inf_norm, double kurtosis) {
    return json{{"variant", variant},
                {"seed", seed},
                {"outliers", {{"avg_kurtosis", kurtosis}, {"max_inf_norm", inf_norm}}}};
  };
  std::vector<std::vector<json>> results = {
      {result("softmax", 0, 10, 5), result("softmax", 2, 12, 5), result("gated(mlp)", 2, 9, 6.5),
       result("gated(mlp)", 0, 13, 4), result("gated(mlp)", 1, 1, 1), result("softmax1", 5, 8, 5)},
      {result("softmax", 0, 4, 3)}};
  for (size_t i = 0; i < results[0].size(); ++i) {
    results[0][i]["w8a8"]["kl"] = 0.001 * static_cast<double>(i);
    results[0][i]["extra"]["books"]["w8a8"]["kl"] = 0.01 * static_cast<double>(i * i);  // the held-out books
  }
  const auto paired = experiment::paired_outliers({"bert", "opt"}, results,
                                                  {{"softmax", "gated(mlp)", "softmax1"}, {"softmax"}});
  ASSERT_EQ(paired.size(), 1u) << paired.dump();  // opt: a baseline alone; softmax1: no seed shared with softmax
  EXPECT_EQ(paired[0]["task"], "bert");
  EXPECT_EQ(paired[0]["baseline"], "softmax");
  ASSERT_EQ(paired[0]["variants"].size(), 1u) << paired.dump();
  const auto& gated = paired[0]["variants"][0];
  EXPECT_EQ(gated["variant"], "gated(mlp)");
  EXPECT_EQ(gated["column"], "gated");
  EXPECT_EQ(gated["seeds"], json::array({2, 0}));  // in the order of the variant's runs; seed 1 has no baseline
  EXPECT_EQ(gated["max_inf_norm"], json::array({-3.0, 3.0}));
  EXPECT_EQ(gated["avg_kurtosis"], json::array({1.5, -1.0}));
  ASSERT_EQ(gated["w8a8_kl_mnats"].size(), 2u);  // KL 2 and 3 mnats against 1 and 0
  EXPECT_NEAR(gated["w8a8_kl_mnats"][0].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(gated["w8a8_kl_mnats"][1].get<double>(), 3.0, 1e-12);
  ASSERT_EQ(gated["extra_w8a8_kl_mnats"]["books"].size(), 2u);  // books KL 40 and 90 mnats against 10 and 0
  EXPECT_NEAR(gated["extra_w8a8_kl_mnats"]["books"][0].get<double>(), 30.0, 1e-9);
  EXPECT_NEAR(gated["extra_w8a8_kl_mnats"]["books"][1].get<double>(), 90.0, 1e-9);
  EXPECT_TRUE(experiment::paired_outliers({"opt"}, {results[1]}, {{"softmax"}}).empty());
  // The summary's third table; a task without a KL (a forecast) would have no row in it.
  const auto tables = experiment::outlier_summary_tables(
      experiment::paired_outliers({"bert"}, {results[0]}, {{"softmax", "gated(mlp)"}}));
  EXPECT_NE(tables.find("Δ W8A8 KL (mnats), variant − baseline:\n\n| task | baseline | gated |\n|---|---|---|\n"
                        "| bert | softmax | +2.00 ± 1.00 (0/2) |\n"),
            std::string::npos)
      << tables;
  EXPECT_NE(tables.find("Δ W8A8 books KL (mnats), variant − baseline:\n\n| task | baseline | gated |\n|---|---|---|\n"
                        "| bert | softmax | +60.00 ± 30.00 (0/2) |\n"),
            std::string::npos)
      << tables;
  // Tasks quantized differently: the KL tables say "quantized" and each row names its task's scheme.
  auto w4a8 = results;
  for (auto& r : w4a8[1]) r["w8a8_bits"] = {{"weights", 4}, {"activations", 8}, {"weight_granularity", "channel"}};
  w4a8[1].push_back(result("gated(mlp)", 0, 4, 3));
  w4a8[1].back()["w8a8_bits"] = w4a8[1][0]["w8a8_bits"];
  for (auto& r : w4a8[1]) r["w8a8"]["kl"] = 0.001;
  const auto mixed =
      experiment::paired_outliers({"bert", "opt"}, w4a8, {{"softmax", "gated(mlp)"}, {"softmax", "gated(mlp)"}});
  EXPECT_EQ(mixed[0]["scheme"], "W8A8");
  EXPECT_EQ(mixed[1]["scheme"], "W4A8 per-channel");
  const auto mixed_tables = experiment::outlier_summary_tables(mixed);
  EXPECT_NE(
      mixed_tables.find("Δ quantized KL (mnats), variant − baseline:\n\n| task | baseline | gated |\n|---|---|---|\n"
                        "| bert (W8A8) | softmax | +2.00 ± 1.00 (0/2) |\n"
                        "| opt (W4A8 per-channel) | softmax | +0.00 (0/1) |\n"),
      std::string::npos)
      << mixed_tables;
  // A run without the held-out books: no books KL for that task.
  results[0][1].erase("extra");
  EXPECT_FALSE(experiment::paired_outliers({"bert"}, {results[0]}, {{"softmax", "gated(mlp)"}})[0]["variants"][0]
                   .contains("extra_w8a8_kl_mnats"));
}

TEST(Runner, ForecastSummaryPutsTasksSideBySide) {
  auto result = [](const std::string& variant, int64_t seed, double mse, double mae) {
    return json{{"variant", variant}, {"seed", seed}, {"fp32", {{"mse", mse}, {"mae", mae}}}};
  };
  const std::vector<std::vector<json>> results = {
      {result("softmax", 0, 0.5, 0.4), result("softmax", 1, 0.7, 0.6), result("sparsemax", 0, 0.3, 0.5),
       result("sparsemax", 1, 0.5, 0.5)},
      {result("softmax", 0, 0.2, 0.3)},  // sparsemax not run on this task yet
      {}};                               // nor anything on this one
  const auto table =
      experiment::forecast_summary_table({"etth1-24", "wth-24", "ettm1-24"}, results, {"softmax", "sparsemax"});
  EXPECT_NE(table.find("| task | softmax MSE | softmax MAE | sparsemax MSE | sparsemax MAE |\n|---|---|---|---|---|\n"),
            std::string::npos)
      << table;
  // Means 0.6 vs 0.4 (MSE: sparsemax lower) and 0.5 vs 0.5 (MAE: a tie, both bold); population std 0.1.
  EXPECT_NE(table.find("| etth1-24 | 0.6000 ± 0.1000 | **0.5000 ± 0.1000** | **0.4000 ± 0.1000** | **0.5000 ± "
                       "0.0000** |\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("| wth-24 | **0.2000** | **0.3000** | – | – |\n"), std::string::npos) << table;
  EXPECT_EQ(table.find("ettm1-24"), std::string::npos) << table;  // no runs: no row
  // Fewer seeds than the row's most are marked.
  const auto partial = experiment::forecast_summary_table(
      {"etth1-168"}, {{result("softmax", 0, 0.5, 0.4), result("softmax", 1, 0.5, 0.4), result("sparsemax", 0, 0.1, 0.1)}},
      {"softmax", "sparsemax"});
  EXPECT_NE(partial.find("| **0.1000** (1 seed) | **0.1000** (1 seed) |"), std::string::npos) << partial;
  EXPECT_EQ(experiment::forecast_summary_table({"x"}, {{}}, {"softmax"}), "");
}

TEST(Runner, NativeHalfPrecisionEvaluatesTheCastModelAndLeavesItFloat) {
  const auto dir = fresh_dir("native-half");
  ToyForecastTask task(0, 1);
  experiment::RunOptions options;
  options.log_every = 100, options.time_int8 = false;
  ASSERT_TRUE(experiment::run_one(task, "softmax1", 0, (dir / "run").string(), options).has_value());
  auto model = task.build("softmax1");
  load_module((dir / "run" / "model.safetensors").string(), *model.module);
  experiment::EvaluateOptions evaluate;
  evaluate.precisions = {"fp32", "fp16", "bf16"};
  const auto emulated = experiment::evaluate_model(task, model, evaluate);
  evaluate.native_half = at::Device(at::kCPU);
  const auto native = experiment::evaluate_model(task, model, evaluate);
  EXPECT_EQ(emulated["half_precision"], "emulated");
  EXPECT_EQ(native["half_precision"], "native on cpu");
  EXPECT_EQ(native["fp32"], emulated["fp32"]);  // FP32 is untouched by either mode
  for (const char* p : {"fp16", "bf16"}) {
    const double change = native[p]["output_change"].get<double>();
    EXPECT_GT(change, 0.0) << p;
    EXPECT_LT(change, std::string(p) == "fp16" ? 0.01 : 0.05) << p;  // relative: 11 and 8 mantissa bits
    EXPECT_NE(native[p]["mse"], emulated[p]["mse"]) << p;             // half arithmetic, not only half storage
  }
  for (const auto& p : model.module->parameters()) EXPECT_EQ(p.scalar_type(), at::kFloat);
  EXPECT_EQ(experiment::evaluate_model(task, model, evaluate)["fp32"], native["fp32"]);  // restored exactly
  fs::remove_all(dir);
}

// softmax rows sum to 1; softmax_1 rows to sum(e^s) / (1 + sum(e^s)), computed here from the layer's own scores.
TEST(Runner, AttentionUseIsTheRowMassOfEachLayersProbabilities) {
  ToyTask task;
  experiment::EvaluateOptions evaluate;
  evaluate.precisions = {"fp32"};
  for (const std::string variant : {"softmax", "softmax1"}) {
    auto model = task.build(variant);
    const auto result = experiment::evaluate_model(task, model, evaluate);
    auto points = std::make_shared<nn::ActivationPoints>();
    std::map<std::string, std::vector<double>> expected;  // per layer: each row's mass from its scores
    std::map<std::string, double> entropy;  // per layer: the rows' summed entropy, logsumexp(s) - sum softmax(s) s
    points->add_observer([&](const std::string& name, const at::Tensor& x) {
      const std::string suffix = ".attn_scores";
      if (!name.ends_with(suffix)) return;
      const auto s = x.to(at::kDouble);
      const auto e = s.exp().sum(-1).reshape(-1);
      const auto mass = variant == "softmax" ? at::ones_like(e) : e / (1 + e);
      const auto layer = name.substr(0, name.size() - suffix.size());
      auto& rows = expected[layer];
      for (int64_t i = 0; i < mass.numel(); ++i) rows.push_back(mass[i].item<double>());
      entropy[layer] += (s.logsumexp(-1) - (at::softmax(s, -1) * s).sum(-1)).sum().item<double>();
    });
    points->set_transform([](const std::string&, const at::Tensor& x) { return x; });
    model.set_points(points);
    {
      torch::NoGradGuard no_grad;
      model.module->eval();
      for (const auto& batch : task.eval_batches()) model.logits(batch.input);
    }
    model.set_points(nullptr);
    ASSERT_EQ(result["attention"].size(), expected.size()) << variant;
    for (const auto& a : result["attention"]) {
      const auto& rows = expected.at(a["point"].get<std::string>());
      double mean = 0;
      for (double m : rows) mean += m / rows.size();
      EXPECT_EQ(a["rows"].get<size_t>(), rows.size());
      EXPECT_NEAR(a["mean_mass"].get<double>(), mean, 1e-5) << variant << " " << a["point"];
      // Scaled to sum to 1, a softmax_1 row is the softmax row: the same entropy in both.
      EXPECT_NEAR(a["mean_entropy"].get<double>(), entropy.at(a["point"].get<std::string>()) / rows.size(), 1e-5);
      EXPECT_EQ(a["low_mass_share"].get<double>(), 0.0);  // untrained: near uniform, no row abstains
      if (variant == "softmax1") EXPECT_LT(a["mean_mass"].get<double>(), 0.999);
    }
  }
}

// With every gate weight 0 and every gate bias b, each gate is sigmoid(b) exactly (for the MLP gate too: its hidden
// units are relu(b)); the gates are reported per layer and stay out of the outlier statistics.
TEST(Runner, AttentionUseReportsTheGatesOfGatedAttention) {
  ToyTask task;
  experiment::EvaluateOptions evaluate;
  evaluate.precisions = {"fp32", "w8a8"};
  for (const std::string variant : {"gated(linear)", "gated_softmax1(mlp)"}) {
    auto model = task.build(variant);
    for (const double bias : {-3.0, 2.0}) {
      {
        torch::NoGradGuard no_grad;
        for (auto& item : model.module->named_parameters())
          if (item.key().find(".alpha.") != std::string::npos)
            item.value().fill_(item.key().ends_with(".bias") ? bias : 0.0);
      }
      const auto result = experiment::evaluate_model(task, model, evaluate);
      ASSERT_EQ(result["attention"].size(), 1u) << variant;  // toy_vit: one layer
      for (const auto& a : result["attention"]) {
        EXPECT_NEAR(a["mean_gate"].get<double>(), 1 / (1 + std::exp(-bias)), 1e-6) << variant << " " << a["point"];
        EXPECT_EQ(a["low_gate_share"].get<double>(), bias < 0 ? 1.0 : 0.0);
      }
      for (const auto& m : result["outliers"]["modules"])
        EXPECT_EQ(m["module"].get<std::string>().find("attn_gates"), std::string::npos);
    }
  }
  auto softmax = task.build("softmax");
  const auto plain = experiment::evaluate_model(task, softmax, evaluate);
  for (const auto& a : plain["attention"]) EXPECT_FALSE(a.contains("mean_gate"));
}

// eval.calibrate_on: eval freezes the W8A8 ranges on the first evaluation batches: the same W8A8 result as a task
// whose own calibration batches are those, and another than the toy task's training-batch calibration.
TEST(Runner, CalibrateOnEvalCalibratesOnTheEvaluationBatches) {
  struct CalibratedOnEval : ToyTask {
    CalibratedOnEval() { evaluation_.calibrate_on = "eval", evaluation_.calibration_batches = 3; }
  };
  struct CalibrationIsEval : ToyTask {  // the oracle: batches 0, 1, 0 of the toy task's two
    CalibrationIsEval() { evaluation_.calibration_batches = 3; }
    experiment::Batch calibration_batch(int64_t i, at::Generator&) const override { return eval_batches()[i % 2]; }
  };
  const auto evaluate = [](const experiment::Task& task) {
    at::manual_seed(0);
    auto model = task.build("softmax1");
    experiment::EvaluateOptions options;
    options.precisions = {"fp32", "w8a8"};
    return experiment::evaluate_model(task, model, options);
  };
  const auto on_eval = evaluate(CalibratedOnEval()), oracle = evaluate(CalibrationIsEval());
  EXPECT_EQ(on_eval["w8a8"], oracle["w8a8"]);
  EXPECT_NE(on_eval["w8a8"]["kl"], evaluate(ToyTask())["w8a8"]["kl"]);
  EXPECT_EQ(on_eval["w8a8_calibrate_on"], "eval");  // the result says how it was calibrated
  EXPECT_FALSE(oracle.contains("w8a8_calibrate_on"));
}

// eval.weight_bits / eval.activation_bits reach the simulation: fewer bits on either side cost more, more bits less,
// 16 on both least (not nothing: the percentile ranges clip the extremes at any width). Real INT8 is left out at
// other widths and the result names them.
TEST(Runner, BitWidthsSetTheSimulatedQuantization) {
  struct Widths : ToyTask {
    Widths(int64_t weights, int64_t activations, bool per_channel = false) {
      evaluation_.weight_bits = weights, evaluation_.activation_bits = activations;
      evaluation_.per_channel_weights = per_channel;
    }
    std::function<std::string(const std::string&)> int8_input_point() const override {
      return analysis::vit_linear_input_point;  // the toy task's model is a ViT
    }
  };
  const auto evaluate = [](int64_t weights, int64_t activations, bool per_channel = false) {
    const Widths task(weights, activations, per_channel);
    at::manual_seed(0);
    auto model = task.build("softmax1");
    experiment::EvaluateOptions options;
    options.precisions = {"fp32", "w8a8", "int8"};
    return experiment::evaluate_model(task, model, options);
  };
  const auto kl = [](const json& result) { return result["w8a8"]["kl"].get<double>(); };
  const auto w8a8 = evaluate(8, 8), w4a8 = evaluate(4, 8), w8a4 = evaluate(8, 4), w16a8 = evaluate(16, 8),
             w8a16 = evaluate(8, 16), w16a16 = evaluate(16, 16);
  EXPECT_GT(kl(w4a8), kl(w8a8));
  EXPECT_GT(kl(w8a4), kl(w8a8));
  EXPECT_LT(kl(w16a8), kl(w8a8));
  EXPECT_LT(kl(w8a16), kl(w8a8));
  EXPECT_LT(kl(w16a16), std::min(kl(w16a8), kl(w8a16)));
  EXPECT_LT(kl(w16a16), 0.1 * kl(w8a8)) << kl(w16a16) << " vs " << kl(w8a8);
  EXPECT_FALSE(w8a8.contains("w8a8_bits"));
  EXPECT_EQ(
      w4a8["w8a8_bits"],
      (json{{"weights", 4}, {"activations", 8}, {"weight_granularity", "tensor"}, {"table_granularity", "tensor"}}));
  EXPECT_TRUE(w8a8.contains("int8"));
  EXPECT_FALSE(w4a8.contains("int8"));
  // One weight scale per output channel: a finer grid than one per tensor, so the weights lose less (the toy model's
  // KL, about 1e-6 nats, is too small to order the two: per-channel measured higher); not the paper's scheme, so no
  // real INT8 beside it, and the result says which it was.
  const auto w4a8_channel = evaluate(4, 8, true), w8a8_channel = evaluate(8, 8, true);
  const auto mean_weight_error = [](const json& result) {  // over the weights the simulation quantized
    double sum = 0;
    for (const auto& w : result["w8a8_weight_errors"]) sum += w["relative_error"].get<double>();
    return sum / result["w8a8_weight_errors"].size();
  };
  ASSERT_EQ(w4a8_channel["w8a8_weight_errors"].size(), w4a8["w8a8_weight_errors"].size());
  EXPECT_LT(mean_weight_error(w4a8_channel), mean_weight_error(w4a8));
  EXPECT_GT(mean_weight_error(w4a8), mean_weight_error(w8a8));
  EXPECT_EQ(w8a8_channel["w8a8_bits"]["weight_granularity"], "channel");
  EXPECT_FALSE(w8a8_channel.contains("int8"));
  // The task's table names the scheme its results ran in every quantized column.
  auto labelled = w4a8_channel;
  labelled["variant"] = "softmax1";
  labelled["fp16"] = labelled["bf16"] = labelled["fp32"];  // half precision not evaluated here
  const auto table = experiment::results_table(Widths(4, 8, true), {labelled}, {"softmax1"});
  EXPECT_NE(table.find("| W4A8 per-channel KL (mnats) | W4A8 per-channel same top-1 % |"), std::string::npos) << table;
  EXPECT_EQ(table.find("W8A8"), std::string::npos) << table;
}

// W8A8's per-point errors cover the attention scores and probabilities too (the FP32 reference runs the eager
// attention), in forward order, each finite and moved by the quantization, with the range W8A8 froze for it.
TEST(Runner, W8A8PointErrorsIncludeTheAttentionScoresAndProbabilities) {
  ToyTask task;
  auto model = task.build("softmax1");
  experiment::EvaluateOptions evaluate;
  evaluate.precisions = {"fp32", "w8a8"};
  const auto errors = experiment::evaluate_model(task, model, evaluate)["w8a8_point_errors"];
  std::vector<std::string> names;
  for (const auto& e : errors) {
    names.push_back(e["point"].get<std::string>());
    const double error = e["relative_error"].get<double>();
    EXPECT_TRUE(std::isfinite(error)) << names.back();
    EXPECT_GE(error, 0.0) << names.back();
  }
  auto index = [&](const std::string& suffix) {
    const auto it = std::find_if(names.begin(), names.end(), [&](const auto& n) { return n.ends_with(suffix); });
    return it == names.end() ? -1 : static_cast<int>(it - names.begin());
  };
  const int q = index(".q_proj"), scores = index(".attn_scores"), probs = index(".attn_probs"),
            context = index(".context");
  ASSERT_GE(scores, 0);
  ASSERT_GE(probs, 0);
  EXPECT_LT(q, scores);
  EXPECT_LT(scores, probs);
  EXPECT_LT(probs, context);
  EXPECT_GT(errors[scores]["relative_error"].get<double>(), 1e-4);
  EXPECT_GT(errors[probs]["relative_error"].get<double>(), 1e-4);
  // Each quantized point carries its calibrated range (the grid extends it to hold 0); probabilities' within [0, 1].
  for (const auto& e : errors) {
    ASSERT_TRUE(e.contains("range")) << e["point"];
    EXPECT_LT(e["range"][0].get<double>(), e["range"][1].get<double>()) << e["point"];
  }
  EXPECT_GE(errors[probs]["range"][0].get<double>(), 0.0);
  EXPECT_LE(errors[probs]["range"][1].get<double>(), 1.0);
  // Each point's rms is that of its FP32 value on the probe (the first 4 samples of the first evaluation batch).
  std::map<std::string, double> rms;
  auto observed = std::make_shared<nn::ActivationPoints>();
  observed->add_observer([&](const std::string& name, const at::Tensor& x) {
    rms[name] = x.to(at::kDouble).square().mean().sqrt().item<double>();
  });
  observed->set_transform([](const std::string&, const at::Tensor& x) { return x; });  // the eager attention
  model.set_points(observed);
  {
    torch::NoGradGuard no_grad;
    model.module->eval();
    model.logits(task.eval_batches().front().input.slice(0, 0, 4));
  }
  model.set_points(nullptr);
  for (const auto& e : errors)
    EXPECT_NEAR(e["rms"].get<double>(), rms.at(e["point"].get<std::string>()), 1e-5 * rms.at(e["point"])) << e["point"];
  // A point left in float has no range.
  evaluate.keep_float = [](const std::string& name) { return name.ends_with(".attn_probs"); };
  const auto kept = experiment::evaluate_model(task, model, evaluate)["w8a8_point_errors"];
  ASSERT_EQ(kept.size(), errors.size());
  EXPECT_FALSE(kept[probs].contains("range"));
  EXPECT_TRUE(kept[scores].contains("range"));
}

// A kind is the point's name without its layer numbers; only whole all-digit components are numbers.
TEST(W8A8Breakdown, PointKindReplacesLayerNumbers) {
  EXPECT_EQ(experiment::point_kind("model.decoder.layers.3.self_attn.attn_scores"),
            "model.decoder.layers.*.self_attn.attn_scores");
  EXPECT_EQ(experiment::point_kind("model.decoder.layers.11"), "model.decoder.layers.*");
  EXPECT_EQ(experiment::point_kind("encoder.encode_blocks.0.encode_layers.1.mlp1.2"),
            "encoder.encode_blocks.*.encode_layers.*.mlp1.*");
  EXPECT_EQ(experiment::point_kind("a.fc1.norm2"), "a.fc1.norm2");
  EXPECT_EQ(experiment::point_kind("vit.layernorm"), "vit.layernorm");
}

// Each kind's row is the W8A8 evaluation with exactly that kind in float: the same KL as evaluate_model given a
// keep-float rule written here by suffix; every quantized point is in one kind; the largest saving comes first.
TEST(W8A8Breakdown, EachRowIsTheEvaluationWithThatKindInFloat) {
  at::manual_seed(0);  // the toy's weights
  ToyTask task;
  auto model = task.build("softmax1");
  experiment::EvaluateOptions evaluate;
  evaluate.precisions = {"fp32", "w8a8"};
  evaluate.time_int8 = false;
  const auto breakdown = experiment::w8a8_breakdown(task, model, evaluate);
  int64_t quantized = 0;
  for (const auto& e : breakdown["full"]["w8a8_point_errors"]) quantized += e.contains("range");
  int64_t counted = 0;
  double previous = 0;
  for (const auto& row : breakdown["kinds"]) {
    counted += row["points"].get<int64_t>();
    const double kl = row["w8a8"]["kl"].get<double>();
    EXPECT_GE(kl, previous) << row["kind"];
    previous = kl;
  }
  EXPECT_EQ(counted, quantized);
  ASSERT_GE(breakdown["kinds"].size(), 3u);
  // In this untrained toy the 8-bit probabilities absorb what the query, key and scores change, but the residual
  // stream's error reaches the output.
  for (const char* suffix : {".attention_residual", ".attn_scores"}) {
    const auto row = std::find_if(breakdown["kinds"].begin(), breakdown["kinds"].end(), [&](const auto& r) {
      return r["kind"].template get<std::string>().ends_with(suffix);
    });
    ASSERT_NE(row, breakdown["kinds"].end()) << suffix;
    evaluate.keep_float = [suffix](const std::string& name) { return name.ends_with(suffix); };
    const auto alone = experiment::evaluate_model(task, model, evaluate);
    EXPECT_DOUBLE_EQ((*row)["w8a8"]["kl"].get<double>(), alone["w8a8"]["kl"].get<double>()) << suffix;
  }
  EXPECT_LT(breakdown["kinds"][0]["w8a8"]["kl"].get<double>(), 0.5 * breakdown["full"]["w8a8"]["kl"].get<double>());
}

// An evaluation cache: the first evaluation fills it, a later one with points in float reuses its FP32 outputs and
// W8A8 ranges and gives the same results as a fresh evaluation, on the further evaluation sets too, without the FP32
// entries; an evaluation with points in float stores no ranges; a cache that lacks a set the evaluation needs is
// refused by name.
TEST(W8A8Breakdown, ACachedEvaluationGivesTheSameResultsAsAFreshOne) {
  struct WithSecondSet : ToyTask {
    WithSecondSet() { second_["second"] = {eval_batches()[1], eval_batches()[0]}; }
    const std::map<std::string, std::vector<experiment::Batch>>& extra_evaluations() const override { return second_; }
    std::map<std::string, std::vector<experiment::Batch>> second_;
  };
  at::manual_seed(0);
  WithSecondSet task;
  auto model = task.build("softmax1");
  experiment::EvaluateOptions evaluate;
  evaluate.precisions = {"fp32", "bf16", "w8a8"};
  evaluate.time_int8 = false;
  const auto residual_in_float = [](const std::string& name) { return name.ends_with(".attention_residual"); };
  evaluate.keep_float = residual_in_float;
  const auto fresh = experiment::evaluate_model(task, model, evaluate);
  experiment::EvaluationCache cache;
  evaluate.cache = &cache;
  evaluate.keep_float = nullptr;
  const auto filling = experiment::evaluate_model(task, model, evaluate);
  ASSERT_FALSE(cache.outputs.empty());
  ASSERT_FALSE(cache.w8a8_ranges.empty());
  EXPECT_TRUE(filling.contains("outliers"));
  evaluate.keep_float = residual_in_float;
  const auto cached = experiment::evaluate_model(task, model, evaluate);
  EXPECT_FALSE(cached.contains("fp32"));
  EXPECT_FALSE(cached.contains("outliers"));
  EXPECT_EQ(cached["w8a8"], fresh["w8a8"]);
  EXPECT_EQ(cached["bf16"], fresh["bf16"]);
  EXPECT_EQ(cached["extra"]["second"]["w8a8"], fresh["extra"]["second"]["w8a8"]);
  EXPECT_EQ(cached["w8a8_point_errors"], fresh["w8a8_point_errors"]);
  EXPECT_NE(cached["w8a8"]["kl"], filling["w8a8"]["kl"]);  // the keep-float rule still applies
  experiment::EvaluationCache partial;
  evaluate.cache = &partial;
  evaluate.extra_sets = false;
  experiment::evaluate_model(task, model, evaluate);
  EXPECT_TRUE(partial.w8a8_ranges.empty());  // calibrated without the residual points
  evaluate.extra_sets = true;
  try {
    experiment::evaluate_model(task, model, evaluate);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no outputs on second"), std::string::npos) << e.what();
  }
}

TEST(Runner, EarlyStoppingKeepsTheBestValidationModelAndResumesExactly) {
  const auto dir = fresh_dir("early-stop");
  ToyForecastTask task(1, 2);
  experiment::RunOptions options;
  options.checkpoint_every = 2, options.log_every = 100, options.time_int8 = false;
  const auto whole = experiment::run_one(task, "softmax1", 0, (dir / "whole").string(), options);
  ASSERT_TRUE(whole.has_value());
  const auto checks = jsonl(dir / "whole" / "validation.jsonl");
  ASSERT_FALSE(checks.empty());
  size_t best = 0;
  for (size_t i = 0; i < checks.size(); ++i) {
    EXPECT_EQ(checks[i]["step"].get<int64_t>(), static_cast<int64_t>(i) + 1);  // every step
    if (checks[i]["validation_loss"] < checks[best]["validation_loss"]) best = i;
  }
  EXPECT_EQ((*whole)["early_stopping"]["best_step"].get<int64_t>(), checks[best]["step"].get<int64_t>());
  const auto table = experiment::results_table(task, {*whole}, {"softmax1"});
  EXPECT_NE(table.find(" | best validation step | seeds |"), std::string::npos) << table;
  EXPECT_NE(table.find(" | " + std::to_string(checks[best]["step"].get<int64_t>()) + " | 1 |\n"), std::string::npos)
      << table;
  experiment::archive_run((dir / "whole").string(), (dir / "archive").string());
  EXPECT_EQ(jsonl(dir / "archive" / "validation.jsonl"), checks);  // kept for the report's validation figure
  // Stopped before the last step, exactly `patience` checks after the best.
  EXPECT_LT(checks.size(), 60u);
  EXPECT_EQ(checks.size() - 1 - best, 2u);
  // The evaluated (saved) model is the best one.
  auto saved = task.build("softmax1"), best_model = task.build("softmax1");
  load_module((dir / "whole" / "model.safetensors").string(), *saved.module);
  load_module((dir / "whole" / "best.safetensors").string(), *best_model.module);
  auto best_params = best_model.module->named_parameters();
  for (const auto& p : saved.module->named_parameters()) EXPECT_TRUE(p.value().equal(best_params[p.key()])) << p.key();

  int calls = 0;  // interrupted after 3 steps, resumed from the checkpoint at step 2
  EXPECT_FALSE(experiment::run_one(task, "softmax1", 0, (dir / "split").string(), options, [&] {
                 return ++calls > 3;
               }).has_value());
  const auto resumed = experiment::run_one(task, "softmax1", 0, (dir / "split").string(), options);
  ASSERT_TRUE(resumed.has_value());
  EXPECT_EQ(jsonl(dir / "split" / "validation.jsonl"), checks);
  EXPECT_EQ((*resumed)["fp32"]["mse"], (*whole)["fp32"]["mse"]);
  fs::remove_all(dir);
}

TEST(Task, HeldOutBooksAreASecondEvaluationAndSavedRunsKeepTheirSplit) {
  const auto dir = testing::shared_data_dir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared/data";
  for (const std::string kind : {"bert", "lm"}) {
    SCOPED_TRACE(kind);
    json config = {{"task", kind},
                   {"data", {{"seq", 32}, {"held_out", 0.01}}},
                   {"model", {{"d_model", 16}, {"layers", 1}, {"heads", 2}, {"d_ff", 32}}},
                   {"train", {{"batch", 4}}},
                   {"eval", {{"batches", 2}, {"calibration_batches", 1}}}};
    const auto task = experiment::make_task(experiment::ConfigReader(config, "test"), dir);
    EXPECT_EQ(task->resolved()["data"]["held_out"], 0.01);
    ASSERT_EQ(task->extra_evaluations().size(), 1u);
    const auto& books = task->extra_evaluations().at("books");
    ASSERT_EQ(books.size(), 2u);
    EXPECT_EQ(books[0].input.sizes(), task->eval_batches()[0].input.sizes());
    EXPECT_FALSE(books[0].input.equal(task->eval_batches()[0].input));
    at::manual_seed(0);
    auto model = task->build("softmax1");
    experiment::EvaluateOptions options;
    options.time_int8 = false;
    auto result = experiment::evaluate_model(*task, model, options);
    for (const char* p : {"fp32", "w8a8"}) {
      const double metric = result["extra"]["books"][p]["metric"];
      EXPECT_TRUE(std::isfinite(metric) && metric > 1) << p << ": " << metric;
    }
    EXPECT_GE(result["extra"]["books"]["w8a8"]["kl"].get<double>(), 0.0);
    // Untrained, the model scores both sets near uniform over the vocabulary, yet not identically.
    EXPECT_NE(result["extra"]["books"]["fp32"]["loss"], result["fp32"]["loss"]);
    result["variant"] = "softmax1";
    const auto table = experiment::results_table(*task, {result}, {"softmax1"});
    const auto m = task->metric_name();
    EXPECT_NE(table.find("| FP32 books " + m + " | W8A8 books " + m + " | W8A8 books KL (mnats) |"), std::string::npos)
        << table;
    char books_cells[96];  // the row's books cells: FP32, W8A8, and the KL in millinats
    std::snprintf(books_cells, sizeof books_cells, "| %.3f | %.3f | %.2f |",
                  result["extra"]["books"]["fp32"]["metric"].get<double>(),
                  result["extra"]["books"]["w8a8"]["metric"].get<double>(),
                  1e3 * result["extra"]["books"]["w8a8"]["kl"].get<double>());
    EXPECT_NE(table.find(books_cells), std::string::npos) << books_cells << "\n" << table;

    // A saved run's config without held_out trained on everything (held_out 0 is left out of a resolved config, so
    // that runs from before it keep theirs): rebuilt, it holds nothing out, where the default would.
    auto saved = task->resolved();
    saved["data"].erase("held_out");
    const auto rebuilt = experiment::make_task(
        experiment::ConfigReader(experiment::saved_task_config(saved), "saved"), dir);
    EXPECT_TRUE(rebuilt->extra_evaluations().empty());
    EXPECT_EQ(rebuilt->resolved(), saved);
    config["data"]["held_out"] = 0.7;
    EXPECT_THROW(experiment::make_task(experiment::ConfigReader(config, "test"), dir), std::runtime_error);
  }
}

}  // namespace
}  // namespace outeffhop
