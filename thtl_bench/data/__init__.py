"""The data layer: real layouts, synthetic phantoms, leak-free splits, a decoded tensor cache."""
