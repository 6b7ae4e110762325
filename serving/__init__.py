"""Code that runs inside Triton's python backend, and the launcher that starts tritonserver."""
