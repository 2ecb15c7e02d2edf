// The outeffhop operator library: every schema in one place (DESIGN.md "Op contract"). Implementations are
// registered per backend in the other files of this folder.
#include <torch/library.h>

TORCH_LIBRARY(outeffhop, m) {
  m.def("softmax_n(Tensor x, float n=1.0, int dim=-1) -> Tensor");
  m.def("_softmax_n_backward(Tensor grad_out, Tensor out, int dim) -> Tensor");
  m.def("clipped_softmax_n(Tensor x, float n, float gamma, float eta, int dim=-1) -> Tensor");
  m.def(
      "attention(Tensor q, Tensor k, Tensor v, Tensor? attn_mask=None, Tensor? sink=None, float n=1.0, "
      "bool causal=False, float? scale=None) -> Tensor");
  m.def(
      "attention_lse(Tensor q, Tensor k, Tensor v, Tensor? attn_mask=None, Tensor? sink=None, float n=1.0, "
      "bool causal=False, float? scale=None) -> (Tensor out, Tensor lse)");
  m.def(
      "clipped_attention(Tensor q, Tensor k, Tensor v, Tensor? attn_mask=None, Tensor? sink=None, float n=1.0, "
      "float gamma=0.0, float eta=1.0, bool causal=False, float? scale=None) -> Tensor");
  m.def("sparsemax(Tensor x, int dim=-1) -> Tensor");
  m.def("_sparsemax_backward(Tensor grad_out, Tensor out, int dim) -> Tensor");
  m.def("entmax15(Tensor x, int dim=-1) -> Tensor");
  m.def("_entmax15_backward(Tensor grad_out, Tensor out, int dim) -> Tensor");
  m.def("entmax_bisect(Tensor x, Tensor alpha, int dim=-1, int n_iter=50) -> Tensor");
  m.def(
      "_entmax_bisect_backward(Tensor grad_out, Tensor out, Tensor x, Tensor alpha, int dim) "
      "-> (Tensor grad_x, Tensor grad_alpha)");
  m.def("kurtosis(Tensor x) -> Tensor");
  m.def("inf_norm(Tensor x) -> Tensor");
  m.def("fake_quant_asym(Tensor x, float xmin, float xmax, int bits=8) -> Tensor");
  m.def("fake_quant_sym(Tensor w, int bits=8) -> Tensor");
  m.def("hopfield_energy(Tensor x, Tensor memories, float beta, float n=1.0) -> Tensor");
  m.def(
      "hopfield_retrieve(Tensor x, Tensor memories, float beta, float n=1.0, int max_steps=1, float eps=0.0) "
      "-> (Tensor x_out, Tensor steps)");
}
