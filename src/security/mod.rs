pub mod ssl_principal;
