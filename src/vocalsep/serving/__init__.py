"""Serving: the MLflow pyfunc and its request checks (`pyfunc`), MLflow's models-from-code entry file
(`served_model`), logging and registering that pyfunc (`register`), and the HTTP server with limits in front
of MLflow's scoring app (`http`, `vocalsep serve`)."""
