terraform {
  # optional() object attributes (1.3), lifecycle preconditions (1.2) and
  # the 1.5 line that is still MPL-licensed; OpenTofu 1.6+ works as well.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # aws_vpc_security_group_*_rule and aws_eip.domain need 5.x; 6.x
      # renamed attributes this module reads (aws_region.name).
      version = ">= 5.30, < 6.0"
    }
  }
}
