"""Code generators for rsu's codecs (run ``python -m rsu.codec.gen``)."""
