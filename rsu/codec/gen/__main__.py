"""python -m rsu.codec.gen [--check]: (re)write rsu/codec/generated/uper.py, or check it is current."""

from __future__ import annotations

import argparse
import sys

from rsu.codec.gen.uper_gen import OUTPUT, generate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rsu.codec.gen", description=__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed module is not current")
    args = ap.parse_args(argv)
    text = generate()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python -m rsu.codec.gen", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
