terraform {
  # optional() object attributes (1.3), lifecycle preconditions (1.2) and
  # the 1.5 line that is still MPL-licensed; OpenTofu 1.6+ works as well.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 7.0"
    }
  }
}
