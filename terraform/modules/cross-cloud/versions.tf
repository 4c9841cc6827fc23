terraform {
  # optional() object attributes (1.3), lifecycle preconditions (1.2) and
  # the 1.5 line that is still MPL-licensed; OpenTofu 1.6+ works as well.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # aws_vpc_security_group_*_rule needs 5.x; the server module pins < 6.
      version = ">= 5.30, < 6.0"
    }
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 7.0"
    }
  }
}
