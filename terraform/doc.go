// Package terraform holds no Go code of its own: it is the home of the Go
// tests over the Terraform in this directory (modules/aws-servers,
// modules/gcp-servers, modules/cross-cloud, examples/3aws-2gcp,
// examples/3aws-3gcp) and over tf-inventory.py, the converter from
// `terraform output -json` to the Ansible inventory.
//
// Provider registries cannot be reached in CI, so `terraform validate`
// cannot run there. The tests parse the HCL with hashicorp/hcl/v2 instead
// and evaluate what matters with the modules' own defaults and validation
// blocks (a small set of Terraform's functions is reimplemented for that):
//
//   - formatting: every .tf file is what hclwrite.Format makes of it;
//   - shape: main.tf, variables.tf, outputs.tf, versions.tf in every module
//     and example; every variable has a description and a type; counts,
//     CIDRs and disk sizes have validation blocks that refuse bad values;
//   - instances: the counts, types and data disk sizes of both examples,
//     Ubuntu 22.04, the data disk mounted at /var/lib/rctl, the
//     role/cloud/region tags and labels, the 3+3 quorum warning and its
//     non-voter;
//   - firewall: every rule that opens 50051/tcp, with its sources, in both
//     clouds, with and without the VPN: never 0.0.0.0/0, the AWS and GCP
//     rules mirror images, SSH only from operator_cidrs, no other port;
//     the rules name addresses, never instances;
//   - outputs: present in the modules and examples, and the recorded
//     documents in testdata/ have exactly the examples' outputs;
//   - tf-inventory.py: the recorded documents give the inventories in
//     testdata/, bad input gives one line and exit status 1, and (when
//     ansible-inventory is installed) ansible-inventory --list accepts the
//     result with the groups and host variables the rollout uses.
//
// terraform/check.sh runs the external tools: terraform fmt, tflint, ruff
// and mypy.
package terraform
