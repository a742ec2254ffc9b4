"""The bucket seen from here: its index, gc, verify, the object cache and pull."""
