"""Model providers used by the gateway: one module per provider behind `ModelProvider`."""
