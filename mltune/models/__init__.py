"""Network families and the building blocks they share (activations, weight init)."""
