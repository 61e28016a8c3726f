package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Child processes: the test binary re-executes itself with childEnv set to
// play a second process (crash writer, lock holder).
const (
	childEnv    = "CANOPY_STORE_TEST_CHILD"
	childDirEnv = "CANOPY_STORE_TEST_DIR"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "crash":
		crashChild(os.Getenv(childDirEnv))
	case "hold":
		holdChild(os.Getenv(childDirEnv))
	default:
		fmt.Println("unknown child mode")
		os.Exit(2)
	}
}

// holdChild opens a profile and keeps it open until killed.
func holdChild(dir string) {
	db, err := Open(context.Background(), dir)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	defer db.Close()
	fmt.Println("ready")
	time.Sleep(time.Minute)
	os.Exit(0)
}
