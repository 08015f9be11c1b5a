"""What a run measures: datasets (bundled, CSV, Hub), models (default, folders, Hub) and the default fine-tuning."""
