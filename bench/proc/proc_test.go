package proc

import (
	"os"
	"syscall"
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

func TestRaiseFileLimit(t *testing.T) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	if got, err := RaiseFileLimit(64); err != nil || got != l.Cur {
		t.Errorf("RaiseFileLimit(64) = %d, %v; want the current %d unchanged", got, err, l.Cur)
	}
	if l.Max >= 1<<62 {
		return // unlimited (RLIM_INFINITY): nothing lies past it
	}
	// Past the hard limit: the soft limit ends at the hard one, unless
	// this process may raise that too.
	got, err := RaiseFileLimit(l.Max + 1)
	if err != nil || got < l.Max {
		t.Errorf("RaiseFileLimit(hard+1) = %d, %v; want at least %d", got, err, l.Max)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil || now.Cur != got {
		t.Errorf("soft limit now %d, RaiseFileLimit said %d", now.Cur, got)
	}
}

func TestOpenFiles(t *testing.T) {
	before, err := OpenFiles(os.Getpid())
	if err != nil || before < 3 {
		t.Fatalf("OpenFiles(self) = %d, %v; want stdin, stdout, stderr at least", before, err)
	}
	f, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	after, err := OpenFiles(os.Getpid())
	f.Close()
	if err != nil || after != before+1 {
		t.Errorf("OpenFiles after opening a file = %d, %v; want %d", after, err, before+1)
	}
	if _, err := OpenFiles(1 << 30); err == nil {
		t.Error("OpenFiles of a missing process: no error")
	}
}
