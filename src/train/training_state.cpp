// Resumable training state (see training_state.h).
#include "outeffhop/training_state.h"

#include "outeffhop/safetensors.h"

namespace outeffhop::train {
namespace {

// The optimizer's parameters by the model's names (AdamW keys its state by the parameter's TensorImpl).
std::map<void*, std::string> parameter_names(const torch::nn::Module& model) {
  std::map<void*, std::string> names;
  for (const auto& p : model.named_parameters()) names[p.value().unsafeGetTensorImpl()] = p.key();
  return names;
}

}  // namespace

void save_training_state(const std::string& path, const torch::nn::Module& model, const torch::optim::AdamW& optimizer,
                         int64_t step, const std::map<std::string, at::Generator>& generators,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model.named_parameters()) tensors.emplace_back("model." + p.key(), p.value().detach());
  for (const auto& b : model.named_buffers()) tensors.emplace_back("model." + b.key(), b.value());
  const auto names = parameter_names(model);
  for (const auto& [key, state] : optimizer.state()) {
    const auto name = names.find(key);
    TORCH_CHECK(name != names.end(), "save_training_state: the optimizer holds a parameter that is not the model's");
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*state);
    TORCH_CHECK(!s.max_exp_avg_sq().defined(), "save_training_state: AMSGrad state is not supported");
    const auto prefix = "optimizer." + name->second;
    tensors.emplace_back(prefix + ".exp_avg", s.exp_avg());
    tensors.emplace_back(prefix + ".exp_avg_sq", s.exp_avg_sq());
    tensors.emplace_back(prefix + ".step", at::tensor({s.step()}, at::kLong));
  }
  for (const auto& [name, gen] : generators) tensors.emplace_back("rng." + name, gen.get_state());
  auto meta = metadata;
  meta["step"] = std::to_string(step);
  save_safetensors(path, tensors, meta);
}

TrainingState load_training_state(const std::string& path, torch::nn::Module& model, torch::optim::AdamW& optimizer,
                                  std::map<std::string, at::Generator> generators) {
  auto file = load_safetensors(path);
  std::map<std::string, at::Tensor> tensors(file.tensors.begin(), file.tensors.end());
  auto take = [&](const std::string& name) {
    const auto it = tensors.find(name);
    TORCH_CHECK(it != tensors.end(), path, ": no tensor '", name, "' (not a training state of this model)");
    auto t = it->second;
    tensors.erase(it);
    return t;
  };
  auto copy_into = [&](const std::string& name, const at::Tensor& target) {
    const auto t = take(name);
    TORCH_CHECK(t.sizes() == target.sizes() && t.scalar_type() == target.scalar_type(), path, ": '", name, "' is ",
                t.scalar_type(), " ", t.sizes(), ", the model's is ", target.scalar_type(), " ", target.sizes());
    return t;
  };
  TrainingState state;
  TORCH_CHECK(file.metadata.count("step"), path, ": no 'step' in the metadata (not a training state)");
  state.step = metadata_int(file.metadata, "step", path);
  file.metadata.erase("step");
  state.metadata = std::move(file.metadata);

  // Read everything before changing anything: a bad file leaves model and optimizer as they were.
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (target, source)
  for (const auto& p : model.named_parameters())
    copies.emplace_back(p.value(), copy_into("model." + p.key(), p.value()));
  for (const auto& b : model.named_buffers()) copies.emplace_back(b.value(), copy_into("model." + b.key(), b.value()));
  std::vector<std::pair<void*, std::unique_ptr<torch::optim::AdamWParamState>>> moments;
  for (const auto& p : model.named_parameters()) {
    const auto prefix = "optimizer." + p.key();
    if (!tensors.count(prefix + ".step")) continue;  // a parameter the optimizer has not stepped yet
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(take(prefix + ".step").item<int64_t>());
    // Copies on the parameter's device (a GPU run resumes with its moments there).
    const auto on_device = [&](const at::Tensor& t) { return t.to(p.value().device(), t.scalar_type(), false, true); };
    s->exp_avg(on_device(copy_into(prefix + ".exp_avg", p.value())));
    s->exp_avg_sq(on_device(copy_into(prefix + ".exp_avg_sq", p.value())));
    moments.emplace_back(p.value().unsafeGetTensorImpl(), std::move(s));
  }
  std::vector<std::pair<at::Generator*, at::Tensor>> rng;
  for (auto& [name, gen] : generators) rng.emplace_back(&gen, take("rng." + name));
  TORCH_CHECK(tensors.empty(), path, ": tensor '", tensors.begin()->first, "' belongs to no parameter of this model");

  torch::NoGradGuard no_grad;
  for (auto& [target, source] : copies) target.copy_(source);
  auto& opt_state = optimizer.state();
  opt_state.clear();
  for (auto& [key, s] : moments) opt_state[key] = std::move(s);
  for (auto& [gen, s] : rng) gen->set_state(s);
  return state;
}

}  // namespace outeffhop::train
