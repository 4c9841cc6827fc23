# tflint settings for terraform/check.sh: only the bundled terraform ruleset
# (plugin registries are unreachable in CI), every rule of it.
config {
  # Local modules are inspected in place; nothing needs `terraform init`.
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}
