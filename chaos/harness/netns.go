package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// A cluster with Config.Netns runs every node in a network namespace of
// its own (Linux, root, iproute2): node i at 10.77.S.(i+2) on a veth whose
// other end is in a bridge of the machine, which holds 10.77.S.1, the
// address of the cameras and of the harness. A fault on a node's network
// then takes everything that crosses it: the cameras, the gossip, the
// peer calls of backfill and federated reads, and the API.
//
// Names: the bridge usbrS, node i's namespace usSnI (its interface eth0),
// the bridge's end of the veth usSnI too.

// netnsPorts are the API and gossip ports of a node in its namespace,
// where no other process binds.
const netnsAPIPort, netnsGossipPort = "7000", "7001"

func netnsIP(subnet, host int) string { return fmt.Sprintf("10.77.%d.%d", subnet, host) }

func (c *Cluster) bridge() string     { return fmt.Sprintf("usbr%d", c.cfg.Subnet) }
func (c *Cluster) netns(i int) string { return fmt.Sprintf("us%dn%d", c.cfg.Subnet, i+1) }

// ipCmd runs ip with args and says what failed.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("harness: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNetns makes the bridge and a namespace per node; what an earlier
// run that died left under the same names goes first.
func (c *Cluster) setupNetns() error {
	if os.Geteuid() != 0 {
		return errors.New("harness: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("harness: network namespaces need iproute2's ip")
	}
	c.teardownNetns()
	br := c.bridge()
	steps := [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", netnsIP(c.cfg.Subnet, 1) + "/24", "dev", br},
		{"link", "set", br, "up"},
	}
	for i := 0; i < c.cfg.Nodes; i++ {
		ns := c.netns(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"link", "set", ns, "master", br, "up"},
			[]string{"-n", ns, "addr", "add", netnsIP(c.cfg.Subnet, i+2) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			c.teardownNetns()
			return err
		}
	}
	c.netnsUp = true
	return nil
}

// teardownNetns removes the namespaces (their veths go with them) and the
// bridge; missing ones are no error.
func (c *Cluster) teardownNetns() {
	for i := 0; i < c.cfg.Nodes; i++ {
		exec.Command("ip", "netns", "del", c.netns(i)).Run()
	}
	exec.Command("ip", "link", "del", c.bridge()).Run()
	c.netnsUp = false
}

// CutNetwork takes node n's network link down (a Config.Netns cluster):
// cameras, peers and the API all go, as when its cable is pulled.
func (n *Node) CutNetwork() error { return n.setLink("down") }

// HealNetwork ends CutNetwork.
func (n *Node) HealNetwork() error { return n.setLink("up") }

func (n *Node) setLink(state string) error {
	if n.Netns == "" {
		return fmt.Errorf("harness: %s has no network namespace (Config.Netns)", n.ID)
	}
	if err := ipCmd("-n", n.Netns, "link", "set", "eth0", state); err != nil {
		return err
	}
	n.logf("%s: network %s", n.ID, state)
	return nil
}

// Partition makes the nodes of side and the rest unreachable from each
// other, both ways, for every protocol (a Config.Netns cluster): each
// node gets a prohibit route to every node of the other side. The
// cameras and the harness (10.77.S.1) stay reachable from both. Heal
// with HealPartition.
func (c *Cluster) Partition(side []*Node) error { return c.partition(side, "add") }

// HealPartition removes what Partition(side) added.
func (c *Cluster) HealPartition(side []*Node) error { return c.partition(side, "del") }

func (c *Cluster) partition(side []*Node, op string) error {
	in := map[*Node]bool{}
	for _, n := range side {
		in[n] = true
	}
	for _, a := range c.Nodes {
		for _, b := range c.Nodes {
			if in[a] == in[b] {
				continue
			}
			if a.Netns == "" {
				return fmt.Errorf("harness: %s has no network namespace (Config.Netns)", a.ID)
			}
			ip := strings.Split(b.Addr, ":")[0]
			if err := ipCmd("-n", a.Netns, "route", op, "prohibit", ip+"/32"); err != nil {
				return err
			}
		}
	}
	c.cfg.Logf("partition %s: %v from the rest", op, ids(side))
	return nil
}
