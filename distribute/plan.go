// Package distribute plans relay distribution of a release bundle: which
// host fetches it from which. It is pure — no I/O, no goroutines, no clock
// — so the shape of the tree is tested here and the runner (runner/
// distribute.go) only carries it out.
//
// The tree: this machine (the root, named "") pushes the bundle to Seeds
// hosts; every host that holds the verified bundle then serves Fanout
// more. Hosts are placed breadth first in the order they stage, so a
// host's source always starts staging before it does, and the depth is
// about log_Fanout(N/Seeds): distribution time grows with log N, not N.
//
// A host whose source fails (did not fetch, cannot serve, served a bundle
// whose checksum is wrong) falls back up the tree: its source's source,
// and so on up to this machine. Nothing ever falls back to an unverified
// copy: every host checks the bundle's sha256 before keeping it.
package distribute

import "fmt"

// Controller is the name of the root of the tree: the machine running
// drover, which holds the bundle it built.
const Controller = ""

// Tree is the relay plan for one deploy.
type Tree struct {
	order    []string
	index    map[string]int
	parent   []int // -1: Controller
	children [][]int
	depth    []int // 1 for seeds
	desc     []int // descendants, not counting the host
}

// Plan places hosts, in the order they stage, into a tree fed by seeds
// hosts from this machine, each host serving at most fanout others. Host
// names must be distinct and not empty.
func Plan(hosts []string, seeds, fanout int) (*Tree, error) {
	if seeds < 1 {
		return nil, fmt.Errorf("seeds %d: must be at least 1", seeds)
	}
	if fanout < 1 {
		return nil, fmt.Errorf("fanout %d: must be at least 1", fanout)
	}
	t := &Tree{
		order:    append([]string(nil), hosts...),
		index:    make(map[string]int, len(hosts)),
		parent:   make([]int, len(hosts)),
		children: make([][]int, len(hosts)),
		depth:    make([]int, len(hosts)),
		desc:     make([]int, len(hosts)),
	}
	for i, h := range hosts {
		if h == Controller {
			return nil, fmt.Errorf("host %d has no name", i)
		}
		if _, dup := t.index[h]; dup {
			return nil, fmt.Errorf("host %s is listed twice", h)
		}
		t.index[h] = i
		// Breadth first: hosts 0..seeds-1 hang off the controller, then
		// each host in turn takes the next fanout hosts.
		p := -1
		if i >= seeds {
			p = (i - seeds) / fanout
		}
		t.parent[i] = p
		if p < 0 {
			t.depth[i] = 1
		} else {
			t.children[p] = append(t.children[p], i)
			t.depth[i] = t.depth[p] + 1
		}
	}
	// Parents come before their children, so one pass from the end sums
	// subtrees.
	for i := len(hosts) - 1; i >= 0; i-- {
		if p := t.parent[i]; p >= 0 {
			t.desc[p] += 1 + t.desc[i]
		}
	}
	return t, nil
}

// Len is the number of hosts in the tree.
func (t *Tree) Len() int { return len(t.order) }

// Has reports whether host is in the tree.
func (t *Tree) Has(host string) bool {
	_, ok := t.index[host]
	return ok
}

// Parent is the host's source: another host, or Controller.
func (t *Tree) Parent(host string) string {
	i, ok := t.index[host]
	if !ok || t.parent[i] < 0 {
		return Controller
	}
	return t.order[t.parent[i]]
}

// Children are the hosts that fetch from host, in staging order.
func (t *Tree) Children(host string) []string {
	i, ok := t.index[host]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(t.children[i]))
	for _, c := range t.children[i] {
		out = append(out, t.order[c])
	}
	return out
}

// Descendants is how many hosts fetch from host directly or through
// others: when they are all done, its relay can stop.
func (t *Tree) Descendants(host string) int {
	if i, ok := t.index[host]; ok {
		return t.desc[i]
	}
	return 0
}

// Ancestors are the hosts a host's bundle passes through, nearest first,
// not counting Controller.
func (t *Tree) Ancestors(host string) []string {
	i, ok := t.index[host]
	if !ok {
		return nil
	}
	var out []string
	for p := t.parent[i]; p >= 0; p = t.parent[p] {
		out = append(out, t.order[p])
	}
	return out
}

// Sources is where host tries to fetch from, in order: its parent, then
// up the tree, then Controller, which always holds the bundle. A host
// not in the tree fetches from Controller.
func (t *Tree) Sources(host string) []string {
	return append(t.Ancestors(host), Controller)
}

// Depth is the number of hops from the controller to the deepest host
// (0 for an empty tree).
func (t *Tree) Depth() int {
	d := 0
	for _, x := range t.depth {
		d = max(d, x)
	}
	return d
}

// HostDepth is the number of hops from the controller to host.
func (t *Tree) HostDepth(host string) int {
	if i, ok := t.index[host]; ok {
		return t.depth[i]
	}
	return 0
}

// Seeds are the hosts fed from the controller.
func (t *Tree) Seeds() []string {
	var out []string
	for i, p := range t.parent {
		if p < 0 {
			out = append(out, t.order[i])
		}
	}
	return out
}

// MaxDepth is the depth Plan gives n hosts: seeds at depth 1, and each
// level holding fanout times the one before.
func MaxDepth(n, seeds, fanout int) int {
	if n <= 0 {
		return 0
	}
	d, level, placed := 1, seeds, seeds
	for placed < n {
		level = min(level*fanout, n)
		placed += level
		d++
	}
	return d
}
