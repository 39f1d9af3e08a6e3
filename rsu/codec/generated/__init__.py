"""Generated code only: every module in this package is written by ``python -m rsu.codec.gen``.

* ``uper``: the UPER encoder and decoder of the six TS 103 301 PDUs (plain Python, one function per
  ASN.1 type), written by ``rsu/codec/gen/uper_gen.py`` from the ASN.1 modules in ``asn1/``.

Do not edit these files: change the generator (or the ASN.1 modules) and regenerate;
``python -m rsu.codec.gen --check`` and tests/test_codec_generated.py fail when a file here is not
what the generator writes. Being machine-written, the code repeats the same shapes for every ASN.1
type: checks for copied blocks (the ``duplicates`` tool) leave this package out; the generator is
the code to keep free of copies.
"""
