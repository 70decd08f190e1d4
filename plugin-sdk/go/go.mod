module switchyard

go 1.24
