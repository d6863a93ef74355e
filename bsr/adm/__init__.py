"""bsradm: high-level administration driven by bsr.conf."""
