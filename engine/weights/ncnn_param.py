"""An ncnn text .param file as its layers, without torch: `weights import-ncnn` refuses a file that is not one
before the importer (engine.weights.ncnn_import) loads torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.protocol import UserError

NCNN_MAGIC = 7767517


@dataclass(frozen=True)
class NcnnLayer:
    kind: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[int, str]

    def int_param(self, key: int, default: int) -> int:
        return int(float(self.params.get(key, default)))

    def float_param(self, key: int, default: float) -> float:
        return float(self.params.get(key, default))


def parse_param(path: Path) -> list[NcnnLayer]:
    """The layers of a text .param file, in file order."""
    if not path.is_file():
        raise UserError(f"ncnn model not found: {path}", "give the .param file (its .bin must sit beside it)")
    try:
        lines = path.read_text().split("\n")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not a text ncnn .param file",
                        "binary .param.bin files are not supported; export a text .param") from error
    lines = [line.strip() for line in lines if line.strip()]
    if len(lines) < 2 or lines[0] != str(NCNN_MAGIC):
        raise UserError(f"{path} is not an ncnn .param file (first line should be {NCNN_MAGIC})",
                        "give the text .param of an ncnn model (its .bin beside it), or leave out --model for the "
                        "shipped realesr-animevideov3")
    try:
        layer_count = int(lines[1].split()[0])
    except (ValueError, IndexError) as error:
        raise UserError(f"{path}: second line should hold the layer and blob counts",
                        "the file is damaged; export the .param again") from error
    layers = []
    for number, line in enumerate(lines[2:], start=3):
        words = line.split()
        try:
            kind, name, n_in, n_out = words[0], words[1], int(words[2]), int(words[3])
            bottoms, tops = tuple(words[4:4 + n_in]), tuple(words[4 + n_in:4 + n_in + n_out])
            params = {}
            for item in words[4 + n_in + n_out:]:
                key, value = item.split("=", 1)
                params[int(key)] = value
        except (ValueError, IndexError) as error:
            raise UserError(f"{path} line {number} is not an ncnn layer line: {line[:80]}",
                            "the file is damaged; export the .param again") from error
        layers.append(NcnnLayer(kind, name, bottoms, tops, params))
    if len(layers) != layer_count:
        raise UserError(f"{path} announces {layer_count} layers but holds {len(layers)}",
                        "the file is truncated")
    return layers
