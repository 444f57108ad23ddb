fn main() {
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(0))
        .io_memory(1 << 20)
        .make()
        .unwrap();
    ex.run(async {
        let l = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        println!("bound {:?}", l.local_addr());
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        println!("ok");
    });
}
