"""The only place that calls OS-native APIs: one module per OS behind one protocol."""
