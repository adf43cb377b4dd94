disks = "20G"
