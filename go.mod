module of3c

go 1.26
