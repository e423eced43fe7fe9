"""Controllers: one file each; they reach the cluster only through `kubeling.client`."""
