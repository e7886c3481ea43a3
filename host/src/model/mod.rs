//! Model runtime: GGUF reader, weights, architectures and the forward pass.
