"""ONNX model loading, debounce, risk blending, tiers and explanations (issue 4)."""
