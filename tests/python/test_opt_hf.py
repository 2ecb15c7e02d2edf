"""Our OPT against Hugging Face's: the same random weights (written by transformers, loaded by `outeffhop lm-logits`
from a safetensors file with HF's own parameter names) must give the same logits."""
import json
import os
import pathlib
import subprocess

import pytest
import torch

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

CLI = os.environ.get("OUTEFFHOP_CLI") or str(pathlib.Path(__file__).resolve().parents[2] / "build" / "src" / "outeffhop")
# CTest names the CLI it built (then a missing one is a failure); without it, an op-library-only build (the GPU
# machines) has no CLI to compare, and the test is skipped.
if "OUTEFFHOP_CLI" not in os.environ and not os.path.exists(CLI):
    pytest.skip(f"outeffhop CLI not built at {CLI} (op-library-only build)", allow_module_level=True)


def our_logits(path, ids):
    out = subprocess.run([CLI, "lm-logits", "--checkpoint", str(path), "--ids", ",".join(map(str, ids))],
                         capture_output=True, text=True, check=True)
    return torch.tensor(json.loads(out.stdout)["logits"], dtype=torch.float64)


@pytest.mark.parametrize("layers,heads,d,ffn", [(2, 4, 32, 64), (1, 2, 16, 48)])
def test_opt_logits_match_hugging_face(tmp_path, layers, heads, d, ffn):
    if not os.path.exists(CLI):
        pytest.fail(f"outeffhop CLI not built: {CLI} (set OUTEFFHOP_CLI)")
    config = transformers.OPTConfig(vocab_size=50, hidden_size=d, num_hidden_layers=layers, ffn_dim=ffn,
                                    num_attention_heads=heads, max_position_embeddings=16, word_embed_proj_dim=d,
                                    do_layer_norm_before=True, dropout=0.0, attention_dropout=0.0,
                                    activation_function="relu")
    torch.manual_seed(0)
    hf = transformers.OPTForCausalLM(config).eval()
    with torch.no_grad():  # LayerNorm (1, 0) and zero biases at init would hide mistakes there: perturb everything
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = {k: v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}  # tied to embed_tokens
    path = tmp_path / "opt.safetensors"
    safetensors_torch.save_file(state, str(path), metadata={
        "variant": "softmax", "vocab_size": "50", "d_model": str(d), "num_layers": str(layers),
        "num_heads": str(heads), "d_ff": str(ffn), "max_positions": "16"})
    ids = [2, 17, 5, 49, 0, 33, 8, 8, 21, 1, 40, 12]
    with torch.no_grad():
        want = hf(torch.tensor([ids])).logits[0].double()
    got = our_logits(path, ids)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4 * max(1.0, want.abs().max().item())
