// Package termsafe makes untrusted text safe to print on a terminal.
//
// Server-provided strings (task ids, types, payloads, node ids, labels,
// addresses, event messages, errors, task output) are written by whoever
// could submit a task or register a node. Printed raw, a control sequence in
// one of them (OSC "ESC ] 0 ; title BEL", CSI, the C1 CSI U+009B, ...) would
// be interpreted by the operator's terminal: it could retitle the window,
// clear the screen, move the cursor to forge output, or write the clipboard.
//
// Every such string that reaches a terminal goes through Field (one value
// on one line) or Block (text printed as lines on purpose, such as a task's
// output) first, and before it is styled or measured: escaping after
// styling would mangle the style's own escape codes, and measuring raw text
// would misalign columns. JSON output needs neither: encoding/json escapes
// control characters itself.
//
// The package is a leaf: it imports only the standard library, so the CLI
// and the terminal view (tui) share one definition of "safe".
package termsafe
