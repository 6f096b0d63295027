"""Kubernetes: the RayCluster and RayJob objects (from the Helm chart's values) and submitting them."""
