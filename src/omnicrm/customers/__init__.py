"""The customer as a whole: the 360 view and the cross-channel timeline behind it."""
