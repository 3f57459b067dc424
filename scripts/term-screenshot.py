#!/usr/bin/env python3
"""Turns a tmux pane captured with escapes (`tmux capture-pane -e -p`) into a PNG:
half-block cells become their two pixels' colours, other text is drawn in a light
grey on a dark background (the terminal's defaults as far as the picture goes).

    python scripts/term-screenshot.py captured.txt out.png
Needs Pillow (in the cached venv that scripts/env.sh activates).
"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

CELL_W, CELL_H = 8, 16
DEFAULT_FG, DEFAULT_BG = (220, 220, 220), (24, 24, 24)
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def cells(line, fg, bg):
    """(char, fg, bg) for every cell of one captured line, starting from the
    colours `fg`, `bg` (capture-pane writes changes only, across lines too), and
    the colours at its end."""
    out, pos = [], 0
    for m in list(SGR.finditer(line)) + [None]:
        end = m.start() if m else len(line)
        out += [(c, fg, bg) for c in line[pos:end]]
        if not m:
            return out, fg, bg
        pos = m.end()
        p = [int(x) if x else 0 for x in m.group(1).split(";")]
        i = 0
        while i < len(p):
            if p[i] == 0:
                fg, bg = DEFAULT_FG, DEFAULT_BG
            elif p[i] == 39:
                fg = DEFAULT_FG
            elif p[i] == 49:
                bg = DEFAULT_BG
            elif p[i] in (38, 48) and i + 4 < len(p) and p[i + 1] == 2:
                rgb = tuple(p[i + 2 : i + 5])
                fg, bg = (rgb, bg) if p[i] == 38 else (fg, rgb)
                i += 4
            i += 1


def main(src, dst):
    lines = open(src, encoding="utf-8").read().rstrip("\n").split("\n")
    rows, fg, bg = [], DEFAULT_FG, DEFAULT_BG
    for line in lines:
        row, fg, bg = cells(line, fg, bg)
        rows.append(row)
    while rows and not rows[-1]:
        rows.pop()
    width = max(len(r) for r in rows)
    img = Image.new("RGB", (width * CELL_W + 16, len(rows) * CELL_H + 16), DEFAULT_BG)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for y, row in enumerate(rows):
        for x, (c, fg, bg) in enumerate(row):
            x0, y0 = 8 + x * CELL_W, 8 + y * CELL_H
            if c == "\u2580":
                draw.rectangle([x0, y0, x0 + CELL_W - 1, y0 + CELL_H // 2 - 1], fill=fg)
                draw.rectangle([x0, y0 + CELL_H // 2, x0 + CELL_W - 1, y0 + CELL_H - 1], fill=bg)
            else:
                draw.rectangle([x0, y0, x0 + CELL_W - 1, y0 + CELL_H - 1], fill=bg)
                if c.strip():
                    draw.text((x0, y0 + 2), c, fill=fg, font=font)
    img.save(dst)


if __name__ == "__main__":
    main(*sys.argv[1:3])
