"""Software-defined assets, grouped by domain and layer."""
