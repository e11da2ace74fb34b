"""Training set assembly, Dask/LightGBM training, evaluation and the model registry."""
