"""Pool Skip inside other frameworks' own training pipelines (nnU-Net v2)."""
