"""Training and validation data: subsets, meta_info files, Set5-style sets, sub-images, demo data."""
