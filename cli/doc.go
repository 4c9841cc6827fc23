// Package cli holds rctl's cobra commands: serve, dev, task, status,
// members, nodes, operator, snapshot, top, tls, acl and version.
//
// Conventions every command follows: flags can be set from RCTL_<FLAG>
// environment variables; -o table|json selects the output (json field
// names are snake_case, the same as on the wire); exit code 0 is success,
// 1 an error, 2 a usage mistake; an error is one line on stderr that says
// what to do next, ending with the stable error code in brackets when the
// server answered with one. Server-provided text is printed through
// internal/termsafe.
package cli
