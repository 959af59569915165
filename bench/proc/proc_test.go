package proc

import (
	"os"
	"testing"
)

func TestSelf(t *testing.T) {
	me := []int{os.Getpid()}
	if tree := Tree(os.Getpid()); len(tree) == 0 || tree[0] != os.Getpid() {
		t.Fatalf("Tree(self) = %v", tree)
	}
	if !Alive(os.Getpid()) {
		t.Error("Alive(self) = false")
	}
	if PeakRSS(me) <= 0 || RSS(me) <= 0 {
		t.Errorf("PeakRSS, RSS = %d, %d; want > 0", PeakRSS(me), RSS(me))
	}
	if CPU(me) < 0 || SelfCPU() <= 0 {
		t.Errorf("CPU, SelfCPU = %v, %v", CPU(me), SelfCPU())
	}
	if CPU([]int{1 << 30}) != 0 || PeakRSS([]int{1 << 30}) != 0 {
		t.Error("a missing process must count as 0")
	}
}
