"""Dataset readers, synthetic look-alikes, splits and media I/O."""
