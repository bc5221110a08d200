"""A CJK-capable font for matplotlib, so that Chinese labels render (no tofu boxes).

dipsim registers Noto Sans CJK SC (SIL Open Font Licence), which the `mplfonts` package ships, with matplotlib's font
manager and uses it by family name; nothing else of that package runs. A system font that covers Chinese (one
matplotlib already knows, e.g. Noto Sans CJK or WenQuanYi installed by the OS) is used when that file is absent.
"""

from __future__ import annotations

import functools
from pathlib import Path

from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

SAMPLE = "中医分值点值"  # characters every label font must have
KNOWN_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei",
                  "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC")


def covers(path: str | Path, text: str = SAMPLE) -> bool:
    """The font file has a glyph for every character of `text`."""
    font = FT2Font(str(path))
    return all(font.get_char_index(ord(ch)) != 0 for ch in text)


@functools.lru_cache(maxsize=1)
def cjk_font() -> tuple[str, str]:
    """(family name, file) of a font that draws Chinese; registered with matplotlib. RuntimeError when none."""
    try:
        import mplfonts

        path = Path(mplfonts.__file__).resolve().parent / "fonts" / "NotoSansCJKsc-Regular.otf"
        if path.is_file():
            font_manager.fontManager.addfont(str(path))
            return font_manager.FontProperties(fname=str(path)).get_name(), str(path)
    except ImportError:
        pass
    for entry in font_manager.fontManager.ttflist:
        if entry.name in KNOWN_FAMILIES and covers(entry.fname):
            return entry.name, entry.fname
    raise RuntimeError("no font that draws Chinese: install dipsim's dependency mplfonts (pip install mplfonts) or a "
                       "CJK font such as fonts-noto-cjk")
