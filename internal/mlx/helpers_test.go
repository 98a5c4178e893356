package mlx

import "runtime"

func runtimeGoexit() { runtime.Goexit() }
func runtimeGC()     { runtime.GC() }
