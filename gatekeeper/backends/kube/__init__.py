"""Live cluster state: the API server's own objects, listed and watched (`serve --kubeconfig`)."""
