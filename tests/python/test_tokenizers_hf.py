"""Our WordPiece (BERT) and GPT-2 byte-level BPE tokenizers against Hugging Face `tokenizers` (a test-only dependency
installed with transformers): the same ids on the books, WikiText-2 and a file of hostile text."""
import json
import os
import pathlib
import subprocess

import pytest

tokenizers = pytest.importorskip("tokenizers")

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = os.environ.get("OUTEFFHOP_CLI") or str(ROOT / "build" / "src" / "outeffhop")
DATA = pathlib.Path(os.environ.get("OUTEFFHOP_DATA_DIR", ROOT.parent / "shared" / "data"))
VOCAB = DATA / "tokenizers" / "bert-base-uncased-vocab.txt"
GPT2 = (DATA / "tokenizers" / "gpt2-vocab.json", DATA / "tokenizers" / "gpt2-merges.txt")
if "OUTEFFHOP_CLI" not in os.environ and not os.path.exists(CLI):
    pytest.skip(f"outeffhop CLI not built at {CLI} (op-library-only build)", allow_module_level=True)
if not VOCAB.exists():
    pytest.skip(f"no BERT vocabulary at {VOCAB}", allow_module_level=True)

HOSTILE = "\n".join([
    "Héllo, Wörld! Ça va? naïve café — “quoted” ‘text’ … end.",
    "ＦＵＬＬＷＩＤＴＨ and ﬁ ligature, Ǆ digraph, İstanbul, ß straße",
    "中文字符和日本語のテキスト 한국어",
    "tabs\tand\u00a0no-break\u2003em space\u200bzero width\u00adsoft hyphen",
    "control\x01chars\x7f and \ufffd replacement",
    "emoji 😀👍🏽 and math ∑∫√ and arrows → ⇒",
    "a" * 150 + " supercalifragilisticexpialidocious antidisestablishmentarianism",
    "don't won't it's U.S.A. e.g. 3.14 1,000,000 $5.00 50% #hash @at",
    "",
    "   leading and trailing   ",
])


def ours(path, kind):
    args = ["--wordpiece", str(VOCAB)] if kind == "wordpiece" else ["--gpt2-vocab", str(GPT2[0]),
                                                                     "--gpt2-merges", str(GPT2[1])]
    out = subprocess.run([CLI, "tokenize", *args, "--file", str(path)], capture_output=True, check=True)
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


def check(path, text, kind):
    if kind == "wordpiece":
        reference = tokenizers.BertWordPieceTokenizer(str(VOCAB), lowercase=True)
    else:  # GPT-2: no prefix space, as GPT2Tokenizer
        reference = tokenizers.ByteLevelBPETokenizer(str(GPT2[0]), str(GPT2[1]), add_prefix_space=False)
    lines = text.split("\n")
    got = ours(path, kind)
    assert len(got) == len(lines)
    for line, ids in zip(lines, got):
        assert ids == reference.encode(line, add_special_tokens=False).ids, repr(line[:120])


@pytest.mark.parametrize("kind", ["wordpiece", "gpt2"])
def test_tokenizers_match_hugging_face_on_hostile_text(tmp_path, kind):
    path = tmp_path / "hostile.txt"
    path.write_text(HOSTILE, encoding="utf-8")
    check(path, HOSTILE, kind)


@pytest.mark.parametrize("kind", ["wordpiece", "gpt2"])
@pytest.mark.parametrize("source", ["books", "wikitext"])
def test_tokenizers_match_hugging_face_on_corpora(tmp_path, source, kind):
    if source == "books":
        files = sorted((DATA / "text" / "books").glob("*.txt"))
        if not files:
            pytest.skip("no books")
        text = "\n".join(f.read_bytes()[:100_000].decode("utf-8", errors="ignore") for f in files)
    else:
        valid = DATA / "text" / "wikitext2_valid.txt"
        if not valid.exists():
            pytest.skip("no WikiText-2")
        text = valid.read_bytes()[:400_000].decode("utf-8", errors="ignore")
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    check(path, text, kind)
