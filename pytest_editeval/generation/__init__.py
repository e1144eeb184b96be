"""Model mode: the model folder's checks, loading a diffusers pipeline and the producer thread that edits rows
ahead of the items (`pipeline`), and the same calls on Ray actors (`ray_actors`)."""
