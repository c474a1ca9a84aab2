"""The docker-free local stack: the built-in local Mixpanel and the tools around it."""
