"""Our OPT, BERT and ViT against Hugging Face's: the same random weights (written by transformers, loaded by `outeffhop
logits` from a safetensors file with HF's own parameter names and our run config as metadata) must give the same
logits."""
import json
import os
import pathlib
import re
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


def our_logits(path, *args):
    out = subprocess.run([CLI, "logits", "--checkpoint", str(path), *args], capture_output=True, text=True, check=True)
    return torch.tensor(json.loads(out.stdout)["logits"], dtype=torch.float64)


def hub_vit_names(name):
    """transformers 5 renames ViT's parameters when it loads a checkpoint (its conversion_mapping.py, "ViTModel"); the
    checkpoints on the Hub, and ours, keep the published layout. This is the inverse renaming."""
    for new, old in ((r"^vit\.layers\.", "vit.encoder.layer."), (r"attention\.q_proj", "attention.attention.query"),
                     (r"attention\.k_proj", "attention.attention.key"), (r"attention\.v_proj", "attention.attention.value"),
                     (r"attention\.o_proj", "attention.output.dense"), (r"mlp\.fc1", "intermediate.dense"),
                     (r"mlp\.fc2", "output.dense")):
        name = re.sub(new, old, name)
    return name


def save_perturbed(hf, path, task, skip=(), rename=lambda name: name):
    """HF's random weights, each perturbed (LayerNorm (1, 0) and zero biases at init would hide mistakes there),
    saved with the run config `outeffhop experiment` writes into its checkpoints."""
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = {rename(k): v.contiguous() for k, v in hf.state_dict().items() if k not in skip}
    config = {"task": task, "variant": "softmax", "seed": 0}
    safetensors_torch.save_file(state, str(path), metadata={"config": json.dumps(config)})


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
    path = tmp_path / "opt.safetensors"
    model = {"d_model": d, "layers": layers, "heads": heads, "d_ff": ffn, "dropout": 0.0, "attention_dropout": 0.0,
             "init_std": 0.02}
    save_perturbed(hf, path, {"task": "lm", "model": model, "derived": {"vocab_size": 50, "max_positions": 16}},
                   skip=("lm_head.weight",))  # tied to embed_tokens
    ids = [2, 17, 5, 49, 0, 33, 8, 8, 21, 1, 40, 12]
    with torch.no_grad():
        want = hf(torch.tensor([ids])).logits[0].double()
    got = our_logits(path, "--ids", ",".join(map(str, ids)))
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("layers,heads,d,ffn,channels,size,patch", [(2, 2, 16, 32, 3, 8, 4), (1, 4, 32, 48, 1, 12, 3)])
def test_vit_logits_match_hugging_face(tmp_path, layers, heads, d, ffn, channels, size, patch):
    if not os.path.exists(CLI):
        pytest.fail(f"outeffhop CLI not built: {CLI} (set OUTEFFHOP_CLI)")
    config = transformers.ViTConfig(image_size=size, patch_size=patch, num_channels=channels, hidden_size=d,
                                    num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
                                    hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                    layer_norm_eps=1e-12, num_labels=5, qkv_bias=True)
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(config).eval()
    path = tmp_path / "vit.safetensors"
    model = {"patch_size": patch, "d_model": d, "layers": layers, "heads": heads, "d_ff": ffn, "dropout": 0.0,
             "attention_dropout": 0.0, "init_std": 0.02}
    save_perturbed(hf, path, {"task": "vit", "model": model,
                              "derived": {"image_size": size, "channels": channels, "num_classes": 5}},
                   rename=hub_vit_names)
    images = torch.randn(3, channels, size, size)
    safetensors_torch.save_file({"images": images}, str(tmp_path / "images.safetensors"))
    with torch.no_grad():
        want = hf(pixel_values=images).logits.double()
    got = our_logits(path, "--images", str(tmp_path / "images.safetensors"))
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("layers,heads,d,ffn", [(2, 4, 32, 64), (1, 2, 16, 48)])
def test_bert_logits_match_hugging_face(tmp_path, layers, heads, d, ffn):
    if not os.path.exists(CLI):
        pytest.fail(f"outeffhop CLI not built: {CLI} (set OUTEFFHOP_CLI)")
    config = transformers.BertConfig(vocab_size=60, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                                     intermediate_size=ffn, max_position_embeddings=20, type_vocab_size=2,
                                     hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                     layer_norm_eps=1e-12)
    torch.manual_seed(0)
    hf = transformers.BertForMaskedLM(config).eval()
    path = tmp_path / "bert.safetensors"
    model = {"d_model": d, "layers": layers, "heads": heads, "d_ff": ffn, "dropout": 0.0, "attention_dropout": 0.0,
             "init_std": 0.02}
    # The decoder weight is tied to the word embeddings and its bias to cls.predictions.bias.
    save_perturbed(hf, path, {"task": "bert", "model": model, "derived": {"vocab_size": 60, "max_positions": 20}},
                   skip=("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"))
    ids = [2, 17, 5, 49, 0, 33, 8, 8, 21, 1, 40, 12]
    types = [0] * 5 + [1] * 7
    with torch.no_grad():
        want = hf(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits[0].double()
    got = our_logits(path, "--ids", ",".join(map(str, ids)), "--types", ",".join(map(str, types)))
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4 * max(1.0, want.abs().max().item())
