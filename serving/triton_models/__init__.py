"""TritonPythonModel classes; ``model_repository/<model>/1/model.py`` re-exports one of them."""
