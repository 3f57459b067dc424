#!/usr/bin/env python3
"""Writes tests/data/tokenizer_corpus.json: prompts and the ids open_clip gives them.

tests/tokenizer.rs checks that clipdraw's Rust tokenizer reproduces every entry
exactly. The prompts are hand-written cases, one category per kind of text a user
might type (accents, CJK, emoji, HTML entities, odd whitespace, ...), plus seeded
random combinations of them, so the file is the same on every run. Run it with the
venv that scripts/env.sh sets up (it pins open_clip 3.3.0 and ftfy 6.3.1):

    . scripts/env.sh && python scripts/make_tokenizer_corpus.py

Cases where Rust knowingly differs are kept out, and the script fails if a
hand-written case falls into one (see src/tokenizer/clean.rs for the list):
text that ftfy's mojibake repair would change, and characters newer than Python's
Unicode database.
"""

import json
import os
import random
import sys
import unicodedata

import ftfy
import open_clip
from open_clip.tokenizer import _tokenizer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                   "tokenizer_corpus.json")
CONTEXT_LENGTH = 77
SEED = 20240601
N_RANDOM = 300

# Each category is a list of prompts; a (text, context_length) pair sets another length.
CASES = {
    "plain": [
        "a drawing of a cat", "A drawing of a cat.", "a red star on the left",
        "Three small blue circles.", "a watercolor painting of a fox in the snow",
        "an oil painting of the Eiffel Tower at sunset", "a minimalist line drawing of a bicycle",
        "a photo of a dog", "a sketch of a horse running on the beach", "the Mona Lisa",
        "a portrait of a woman with a pearl earring", "a city skyline at night",
        "a bowl of fruit on a wooden table", "a lighthouse in a storm", "a happy robot",
        "a tree", "sunflowers", "a cartoon of a mouse eating cheese",
        "a steam locomotive crossing a bridge", "a cup of coffee", "a red apple and a green pear",
        "a mountain landscape with a lake", "an astronaut riding a horse",
        "a drawing of a spaceship", "a blue whale", "a child drawing of a house",
        "abstract art", "a map of the world", "a self portrait", "an owl at midnight",
        "a yellow submarine", "a chess board", "a pirate ship", "a bouquet of roses",
        "a hand-drawn logo for a bakery", "a geometric pattern", "Van Gogh's Starry Night",
        "a black and white photograph", "the letter A", "the number 7",
        "a giraffe wearing a scarf", "photorealistic rendering of a sports car",
        "an elephant balancing on a ball", "a snowman", "a castle on a hill",
        "a penguin in a tuxedo", "a dragon breathing fire", "a bird", "a fish",
        "a house with a red roof", "supercalifragilisticexpialidocious",
        "antidisestablishmentarianism", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "x", "ab", "cat", "dogs", "a",
    ],
    "punctuation": [
        "Hello, world!", "what?!", "a...b", "wait... what", "(a cat)", "[x]", "{y}",
        "a/b\\c", "50% off", "#hashtag @user", "email@example.com",
        "https://example.com/path?q=1&r=2", "C++ & C#", "~tilde~", "a_b_c", "a-b—c–d",
        "«guillemets»", "¿qué?", "¡hola!", "…", "•bullet", "x=y+z*2", "snake_case_name",
        "::", "---", "!!!???", "'quoted'", '"double"', "`backtick`", "a;b:c", "<>",
        "^caret^", "|pipe|", "$100", "€50", "£3", "¥1000", "©2024 ®™", "25°C", "±5", "×÷",
        "§1 ¶2", "a,b,c", "end.", ".start", "!", "?", ".", "...", "''", '""', "@#$%^&*()",
        "-_-", ":-)", "<3", "a -> b", "a => b", "a <= b", "1/2", "a.b.c", "e.g.", "i.e.,",
        "‽", "⁂", "※", "†‡", "¦", "a·b", "a\\nb",
    ],
    "digits": [
        "1", "123", "3.14159", "1,000,000", "2024-01-01", "12:30", "0", "007",
        "1st 2nd 3rd 4th", "100%", "v2.0", "10x", "x10", "٣٤٥", "१२३", "①②③", "Ⅻ",
        "½ ¾", "x² + y³", "一二三", "𝟙𝟚𝟛", "12345678901234567890", "0.5 0,5", "-1", "+1",
        "1e10", "0x1F", "ⅷ", "⑳", "⁴", "₂", "H2O", "CO₂", "3d", "4k", "1080p",
    ],
    "contractions": [
        "it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T",
        "It'S", "THEY'RE", "WE'VE", "I'M", "YOU'LL", "HE'D", "it’s", "don’t", "they’re",
        "‘quoted’", "rock 'n' roll", "'s'", "o'clock", "'twas", "ma'am", "y'all'd've",
        "it ' s", "''s", "the cat's toys'", "James' book", "it`s", "it‘s", "it‛s", "itʼs",
        "it′s", "it＇s", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'x",
        "it'ss", "it'sa", "'d'd'd", "can't won't shouldn't", "I'd've", "'ſ", "it'ſ",
        "o'neill's", "'97", "'  s",
    ],
    "accents": [
        "café", "naïve", "Zürich", "résumé", "São Paulo", "Ångström", "façade", "jalapeño",
        "crème brûlée", "Dvořák", "Łódź", "Ærøskøbing", "straße", "ÉCOLE", "cafe\u0301",
        "A\u030a", "e\u0301\u0327", "\u2126 ohm", "\u212b", "ǅ", "İstanbul", "ıi",
        "ΣΑΣ", "ΟΔΟΣ ΟΔΟΣ.", "σίσυφος", "ΣΣ", "Σ", "aΣ", "ΑΣ'", "ß", "ẞ", "Ǆ",
        "Ĳssel", "Tiếng Việt", "Ελληνικά", "Ça va", "Ñandú", "øre", "Œuvre", "ﬀ",
        "o\u0308\u0304", "n\u0303", "\u0301alone", "a\u0345b", "ᾳ", "Ϊ́",
    ],
    "cjk": [
        "自転車", "東京タワー", "한국어", "自転車に乗る犬", "富士山の絵", "北京烤鸭",
        "中文，标点。", "「カギ括弧」", "ｶﾀｶﾅ", "ﾊﾟﾋﾟﾌﾟ", "한국어 문장", "\u1112\u1161\u11ab",
        "ﾡﾤ", "𠮷野家", "ｱｲｳ", "ひらがな", "カタカナ", "漢字とかな", "日本語のテキスト",
        "東京 タワー", "一只猫", "我爱你", "안녕하세요", "ㄱㄴㄷ", "ー", "〜", "・",
    ],
    "emoji": [
        "🐕", "a cat 🐱", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇸🇬🇧",
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "#️⃣", "❤️", "🧑‍💻",
        "✨🎨✨", "☕", "emoji🔥in🔥text", "😀😃😄😁", "👩🏻‍🚀", "1️⃣2️⃣", "©️", "🫠",
        "a 🐕 and a 🐈", "🐕 🐕 🐕", "👁️‍🗨️", "🏃‍♀️", "☺", "♥", "★☆",
    ],
    "html": [
        "&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x27;", "&nbsp;", "&eacute;",
        "&amp", "&lt", "&gt", "&quot", "&nbsp", "&eacute", "caf&eacute;", "caf&eacute",
        "Tom &amp; Jerry", "Tom &amp Jerry", "Tom & Jerry", "a &lt;b&gt; c",
        "&amp;lt;", "&amp;amp;amp;", "&amp;amp;amp;amp;lt;", "&EACUTE;", "P&EACUTE;REZ",
        "BUNDESSTRA&SZLIG;E", "&Eacute;", "&NTILDE; &nTILDE;", "&ampfoo", "&notin; &notit;",
        "this&not that", "&#8217;", "&#x2019;s", "&hellip;", "&mdash;", "&copy; 2024",
        "&euro;5", "&#128;", "&#x85;", "&#0;", "&#xD800;", "&#1114112;", "&#65abc;",
        "&#x;", "&#;", "&;", "& amp;", "&unknown;", "&AMP;", "&Amp;", "&#65;&#x42;&#X43",
        "<b>&amp;</b>", "< &rsquo;", "<&#xFF21;", "&lt;&rsquo;", "a &#x3c; b &amp; c",
        "&lt;start_of_text&gt;", "&Tab;x", "&NewLine;x", "&#10;x", "&#13;x", "&#9;x",
        "&#x1b;[31mx", "&#xfeff;x", "&fjlig;", "&ThickSpace;", "&bne;", "&nbsp;&nbsp;x",
        "&#xFF21;", "&#xFB01;", "&#x201C;q&#x201D;", "&ldquo;q&rdquo;", "&#x301;e",
        "e&#x301;", "&#128512;", "&#x1F600;", "&#xfffe;", "&#127;", "&#x80;&#x9f;",
        "line1 &amp;\n<line2> &amp;\nline3 &amp;", "&aacute&eacute&iacute",
        "&amp;#39;", "&amp;quot;", "&#38;amp;", "&#x26;lt;",
        "&" + "a" * 40 + ";", "&#" + "1" * 30 + ";", "&#x" + "f" * 30 + ";",
    ] + ["&#%d;" % n for n in range(128, 160)],
    "whitespace": [
        "a  b", "a\tb", "a\nb", "a\r\nb", "a\rb", " a ", "\t\ta\t\t", "a\u00a0b",
        "a\u2003b", "a\u3000b", "a\u200bb", "a\u2028b", "a\u2029b", "a\x0bb", "a\x0cb",
        "a\x1cb", "a\x1fb", "a\n\n\nb", "  leading", "trailing  ", "  both  ",
        "\n\na drawing\n\n", "a \t \n \r\n b", "a\u1680b", "a\u202fb", "a\u205fb",
        "a\u180eb", "a\u2060b", "a\u00adb", "tab\tseparated\tvalues", "multi\nline\nprompt",
    ],
    "case": [
        "A CAT", "CamelCase", "HELLO WORLD", "ÀÉÎÕÜ", "ΑΒΓ", "АБВ", "MiXeD CaSe",
        "ALL CAPS PROMPT WITH MANY WORDS", "McDonald's", "iPhone", "DNA", "NASA's rover",
        "ǲ", "ǈ", "ǋ", "Ⅻ ⅻ", "Ⓐ", "Ｚ", "ΆΈΉ", "ῼ", "K kelvin", "Å angstrom",
    ],
    "width": [
        "ＡＢＣ", "ＬＯＵＤ　ＮＯＩＳＥＳ", "１２３", "！？", "ｈｅｌｌｏ", "＂quoted＂",
        "￥100", "ﾟ", "￣", "Ｕﾀｰﾝ", "＜tag＞", "＆amp;", "（括弧）", "ｉｔ＇ｓ", "￠￡￢",
        "｟x｠", "￨￩￪", "ﾠ", "．，", "＿",
    ],
    "ligatures": [
        "ﬁsh", "ﬂower", "ﬀ", "ﬃ", "ﬄ", "ﬅ", "ﬆ", "Ĳ", "ĳ", "ǲ", "ǈ", "ŉ", "Ǳ", "ǳ",
        "Ǆ", "ǅ", "ǆ", "Ǉ", "ǉ", "Ǌ", "ǌ", "ﬂuﬃeﬆ", "oﬃce", "Æsop", "œuvre",
    ],
    "quotes": [
        "“quoted”", "‘single’", "„German“", "‚single‘", "«French»", "‹single›", "‟x‟",
        "‛x", "″double prime″", "〝x〞", "「x」", "“he said ‘hi’”", "''x''",
    ],
    "control": [
        "\x00a", "a\x07b", "\x1b[31mred\x1b[0m", "a\x7fb", "\ufeffbom", "a\u206ab",
        "a\ufffcb", "a\ufffdb", "a\u200db", "a\u200eb", "a\u202eb", "\x1b[", "\x1b]0;t\x07x",
        "a\x01\x02\x03b", "\x1b[1;31;40mbold", "\x1b[٣mx", "a\x08b", "\x1bx", "a\ufff9b\ufffbc",
        "\U000e0041tag", "a\U0001d173b", "\x91quoted\x92", "\x93dq\x94", "a\x85b",
    ] + ["a%sb" % chr(c) for c in range(0x80, 0xA0)],
    "special": [
        "<start_of_text>", "<end_of_text>", "a<start_of_text>b", "<START_OF_TEXT>",
        "<|startoftext|>", "<|endoftext|>", "<ſtart_of_text>", "<end_of_text><end_of_text>",
        "< start_of_text >", "<start_of_text", "start_of_text", "&lt;end_of_text&gt;",
    ],
    "scripts": [
        "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Привет мир",
        "Καλημέρα κόσμε", "Բարեւ", "გამარჯობა", "வணக்கம்", "ሰላም", "ᠮᠣᠩᠭᠣᠯ", "ꦗꦮ",
        "𐌰𐌱", "ᚠᚢᚦ", "ꓮꓯ", "ܫܠܡܐ", "ދިވެހި", "Ἀθῆναι",
    ],
    "empty": [
        "", " ", "\x00", "\n", "&nbsp;", "\u3000", "\ufeff", "\t\n\r ", "\x1b[0m",
        "&#0;", "\u0345", "\x1c\x1d",
    ],
    "long": [
        "a " * 100, "a drawing of " * 30, "cat " * 74, "cat " * 75, "cat " * 76,
        "cat " * 77, "cat " * 78, "a" * 300, "supercalifragilisticexpialidocious" * 10,
        "🐕" * 100, "自転車" * 60, "a, " * 60, "!" * 500, "&amp;" * 100,
        " ".join("word%d" % i for i in range(120)),
        ("An extremely detailed and intricate illustration of a bustling medieval "
         "marketplace, with merchants selling colorful fruits, vegetables, spices and "
         "fabrics, children playing near a stone fountain, knights in shining armor "
         "riding past, a castle looming in the background under a dramatic sunset sky, "
         "painted in the style of the Dutch Golden Age masters, oil on canvas."),
    ],
    "context_length": [
        (t, n) for t in ["a drawing of a cat", "cat " * 10, "", "自転車 🐕"]
        for n in (1, 2, 3, 4, 5, 8, 16, 32)
    ],
}

# Pieces glued between random fragments: they exercise boundaries (a space, none,
# punctuation, an entity, a contraction) where one fragment's text meets the next.
GLUE = [" ", " ", " ", "", "\n", "\t", ", ", "'s ", " &amp; ", "  ", "-", "’", " &", ". "]


def reference(text, context_length):
    row = open_clip.tokenize([text], context_length=context_length)[0].tolist()
    while row and row[-1] == 0:  # padding; the last real id is always 49407
        row.pop()
    truncated = len(_tokenizer.encode(text)) + 2 > context_length
    return row, truncated


def known_difference(text):
    """Why Rust is expected to differ on text, or None."""
    if ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False):
        return "ftfy repairs it as mojibake"
    if any(unicodedata.category(c) == "Cn" for c in text):
        return "it has characters newer than Python's Unicode %s" % unicodedata.unidata_version
    return None


def main():
    entries = []
    problems = []
    for category, cases in CASES.items():
        for case in cases:
            text, n = case if isinstance(case, tuple) else (case, CONTEXT_LENGTH)
            why = known_difference(text)
            if why:
                problems.append(f"{category}: {text!r}: {why}")
                continue
            entries.append((category, text, n))
    if problems:
        sys.exit("hand-written cases Rust cannot match:\n  " + "\n  ".join(problems))

    rng = random.Random(SEED)
    pool = [text for category, text, n in entries
            if n == CONTEXT_LENGTH and category not in ("long", "empty")]
    skipped = 0
    seen = {text for _, text, _ in entries}
    while sum(c == "random" for c, _, _ in entries) < N_RANDOM:
        parts = rng.sample(pool, rng.randint(2, 5))
        text = parts[0]
        for p in parts[1:]:
            text += rng.choice(GLUE) + p
        if rng.random() < 0.2:
            text = text.upper()
        if text in seen or known_difference(text):
            skipped += 1
            continue
        seen.add(text)
        entries.append(("random", text, CONTEXT_LENGTH))

    out = []
    for category, text, n in entries:
        ids, truncated = reference(text, n)
        entry = {"category": category, "text": text}
        if n != CONTEXT_LENGTH:
            entry["context_length"] = n
        entry.update(ids=ids, truncated=truncated)
        out.append(entry)

    meta = {
        "about": "CLIP token ids from open_clip.tokenize; trailing 0 padding removed. "
                 "Generated by scripts/make_tokenizer_corpus.py; do not edit.",
        "open_clip": open_clip.__version__,
        "ftfy": ftfy.__version__,
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "context_length": CONTEXT_LENGTH,
        "seed": SEED,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="ascii") as f:
        # One entry per line: diffs of a regenerated corpus stay readable.
        f.write("{\n")
        for k, v in meta.items():
            f.write(f"  {json.dumps(k)}: {json.dumps(v)},\n")
        f.write('  "entries": [\n')
        f.write(",\n".join("    " + json.dumps(e, ensure_ascii=True) for e in out))
        f.write("\n  ]\n}\n")
    counts = {}
    for e in out:
        counts[e["category"]] = counts.get(e["category"], 0) + 1
    print(f"wrote {os.path.normpath(OUT)}: {len(out)} entries "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())}); "
          f"{skipped} random combinations skipped")


if __name__ == "__main__":
    main()
