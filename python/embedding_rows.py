"""The token table of saved byte-level OPTs against the text they read: which row sets the table's largest magnitude,
how large the rows text looks up are next to the rows it (almost) never looks up, and what one symmetric scale per
table at BITS bits does to the looked-up values. Usage:
    embedding_rows.py BITS TEXT_FILE... -- NAME=MODEL.safetensors...
(outeffhop experiment saves RUNS_DIR/NAME/TASK/VARIANT-seedN/model.safetensors). A row's weight is its byte's share of
the text's bytes; rows beyond byte 255 (BOS) count as never looked up."""
import json
import struct
import sys

import numpy as np


def read_tensor(path, name):
    with open(path, "rb") as f:
        header_size = struct.unpack("<Q", f.read(8))[0]
        entry = json.loads(f.read(header_size))[name]
        if entry["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {entry['dtype']}, not F32")
        begin, end = entry["data_offsets"]
        f.seek(8 + header_size + begin)
        return np.frombuffer(f.read(end - begin), dtype=np.float32).reshape(entry["shape"]).astype(np.float64)


def main(argv):
    if "--" not in argv or len(argv) < 4:
        sys.exit(__doc__)
    split = argv.index("--")
    bits, texts, models = int(argv[1]), argv[2:split], argv[split + 1:]
    counts = np.zeros(256)
    for text in texts:
        counts += np.bincount(np.frombuffer(open(text, "rb").read(), dtype=np.uint8), minlength=256)
    top = 2 ** (bits - 1) - 1
    print(f"| model | table max abs (byte, its share) | table rms | looked-up rms | rows under 1e-5 of the text: "
          f"count, rms | the other rows' rms | {bits}-bit step | looked-up values' relative error at {bits} bits |")
    print("|---|---|---|---|---|---|---|---|")
    for entry in models:
        name, path = entry.split("=", 1)
        table = read_tensor(path, "model.decoder.embed_tokens.weight")
        share = np.zeros(table.shape[0])
        share[:256] = counts[: table.shape[0]] / counts.sum()
        row, _ = np.unravel_index(np.abs(table).argmax(), table.shape)
        step = np.abs(table).max() / top
        quantized = np.clip(np.round(table / step), -top - 1, top) * step
        used_power = (share[:, None] * table ** 2).sum()
        used_error = np.sqrt((share[:, None] * (quantized - table) ** 2).sum() / used_power)
        rare = share < 1e-5
        rms = lambda t: np.sqrt((t ** 2).mean())
        print(f"| {name} | {np.abs(table).max():.3f} ({row}, {share[row]:.1e}) | {rms(table):.3f} | "
              f"{np.sqrt(used_power / table.shape[1]):.3f} | {rare.sum()}, {rms(table[rare]):.3f} | "
              f"{rms(table[~rare]):.3f} | {step:.3f} | {used_error:.3f} |")


if __name__ == "__main__":
    main(sys.argv)
